#!/usr/bin/env bash
# Every machine: the lab's hostnames in /etc/hosts, the time zone, base packages.
# Environment (set by the Vagrantfile): LAB_HOSTS="ip=hostname ...", LAB_TIMEZONE,
# LAB_APT_CACHE (the port of the host's package cache; empty: none).
set -euo pipefail
# shellcheck source=provision/lib.sh
. /var/tmp/labctl/lib.sh
: "${LAB_HOSTS:?LAB_HOSTS is required}"
LAB_TIMEZONE=${LAB_TIMEZONE:-Etc/UTC}
LAB_APT_CACHE=${LAB_APT_CACHE:-}

# apt asks the host's package cache (labctl cache start) for every http
# download while it answers at the default gateway, which is the host on
# every provider; when it does not, apt fetches directly. So the cache
# serves every guest of every lab, and a stopped cache never breaks one.
PROXY_CONF=/etc/apt/apt.conf.d/01labctl-cache
PROXY_DETECT=/usr/local/lib/labctl/apt-proxy
PROXY_PORT=/etc/labctl/apt-cache-port
if [ -n "$LAB_APT_CACHE" ]; then
  [[ $LAB_APT_CACHE =~ ^[0-9]{1,5}$ ]] || fail "LAB_APT_CACHE=$LAB_APT_CACHE is not a port"
  put_file "$PROXY_PORT" 644 <<<"$LAB_APT_CACHE"
  put_file "$PROXY_DETECT" 755 <<'SCRIPT'
#!/bin/bash
# apt's Proxy-Auto-Detect (labctl): the host's package cache at the default
# gateway while it answers, else DIRECT. apt passes the URL.
case "$1" in http://*) ;; *) echo DIRECT; exit 0 ;; esac
port=$(cat /etc/labctl/apt-cache-port 2>/dev/null) || port=
gw=$(awk '$2 == "00000000" { print $3; exit }' /proc/net/route)
if [[ $port =~ ^[0-9]+$ && $gw =~ ^[0-9A-F]{8}$ ]]; then
  host=$(printf '%d.%d.%d.%d' "0x${gw:6:2}" "0x${gw:4:2}" "0x${gw:2:2}" "0x${gw:0:2}")
  if timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null; then
    echo "http://$host:$port"
    exit 0
  fi
fi
echo DIRECT
SCRIPT
  put_file "$PROXY_CONF" 644 <<<"Acquire::http::Proxy-Auto-Detect \"$PROXY_DETECT\";"
else
  for f in "$PROXY_CONF" "$PROXY_DETECT" "$PROXY_PORT"; do
    if [ -e "$f" ]; then
      rm -f "$f"
      changed "removed $f"
    fi
  done
fi

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
