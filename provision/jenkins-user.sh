#!/usr/bin/env bash
# The controller's `jenkins` user, made before Jenkins is installed so that the
# lab's SSH key has a home even when the Jenkins download fails.
set -euo pipefail
# shellcheck source=provision/lib.sh
. /var/tmp/labctl/lib.sh

ensure_user jenkins /var/lib/jenkins
ensure_dir /var/lib/jenkins/.ssh 700 jenkins
ensure_dir /var/lib/jenkins/.labctl 700 jenkins
