#!/usr/bin/env bash
# Every machine: the lab's hostnames in /etc/hosts, the time zone, base packages.
# Environment (set by the Vagrantfile): LAB_HOSTS="ip=hostname ...", LAB_TIMEZONE.
set -euo pipefail
# shellcheck source=provision/lib.sh
. /var/tmp/labctl/lib.sh
: "${LAB_HOSTS:?LAB_HOSTS is required}"
LAB_TIMEZONE=${LAB_TIMEZONE:-Etc/UTC}

ensure_role_packages common

# The lab's hosts live in /etc/labctl/hosts; a boot-time unit merges them into
# /etc/hosts, because some providers (docker) rewrite /etc/hosts at every start.
hosts=$(for pair in $LAB_HOSTS; do printf '%s %s\n' "${pair%%=*}" "${pair#*=}"; done)
put_file /etc/labctl/hosts 644 <<<"$hosts"

put_file /usr/local/sbin/labctl-hosts 755 <<'SCRIPT'
#!/bin/sh
# Merge /etc/labctl/hosts into /etc/hosts as one managed block; print
# "updated" when /etc/hosts changed. Written in place, not renamed over:
# the docker provider bind-mounts /etc/hosts.
set -eu
begin="# BEGIN labctl hosts"
end="# END labctl hosts"
want=$(printf '%s\n' "$begin"; cat /etc/labctl/hosts; printf '%s\n' "$end")
have=$(sed -n "/^$begin\$/,/^$end\$/p" /etc/hosts)
if [ "$have" != "$want" ]; then
  rest=$(sed "/^$begin\$/,/^$end\$/d" /etc/hosts)
  printf '%s\n%s\n' "$rest" "$want" >/etc/hosts
  echo updated
fi
SCRIPT

put_file /etc/systemd/system/labctl-hosts.service 644 <<'UNIT'
[Unit]
Description=The lab's hostnames in /etc/hosts (labctl)
After=local-fs.target
Before=network-online.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/labctl-hosts

[Install]
WantedBy=multi-user.target
UNIT
ensure_enabled labctl-hosts.service
if [ "$(/usr/local/sbin/labctl-hosts)" = updated ]; then
  changed "/etc/hosts: lab hosts block"
fi

if [ "$LAB_TIMEZONE" != "Etc/UTC" ] || [ -e /etc/localtime ]; then
  [ -e "/usr/share/zoneinfo/$LAB_TIMEZONE" ] || ensure_role_packages timezone
  if [ "$(readlink /etc/localtime 2>/dev/null)" != "/usr/share/zoneinfo/$LAB_TIMEZONE" ]; then
    ln -sfn "/usr/share/zoneinfo/$LAB_TIMEZONE" /etc/localtime
    echo "$LAB_TIMEZONE" >/etc/timezone
    changed "time zone $LAB_TIMEZONE"
  fi
fi
