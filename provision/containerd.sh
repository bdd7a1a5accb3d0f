#!/usr/bin/env bash
# containerd and runc from the distribution, enabled as a service.
set -euo pipefail
# shellcheck source=provision/lib.sh
. /var/tmp/labctl/lib.sh

ensure_role_packages containerd
ensure_service containerd
