#!/usr/bin/env bash
# The user's own provisioning: runs as root after the roles, on every `up` that
# creates the machine (and on `labctl provision`). Idempotent, like the roles.
set -euo pipefail
if [ ! -f /etc/motd.d/app ]; then
  mkdir -p /etc/motd.d
  echo "app node of a labctl lab" >/etc/motd.d/app
fi
