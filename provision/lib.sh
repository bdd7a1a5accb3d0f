# shellcheck shell=bash
# Helpers for labctl's provision scripts. The Vagrantfile uploads this file
# first (file provisioner "lib"); every script sources it.

export DEBIAN_FRONTEND=noninteractive
LABCTL_STATE=/var/lib/labctl
mkdir -p "$LABCTL_STATE"
# shellcheck disable=SC2034 # read by the scripts that source this file
FILE_CHANGED=0

say() { printf 'labctl: %s\n' "$*"; }

# Every change a script makes is recorded here: a second provision run of an
# unchanged lab must record none (that is how idempotency is tested).
changed() {
  say "changed: $*"
  printf '%s %s: %s\n' "$(date -u +%FT%TZ)" "${0##*/}" "$*" >>"$LABCTL_STATE/changes.log"
}

apt_get() { apt-get -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 "$@"; }

# The package lists, fetched at most once per script run.
APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" = 0 ]; then
    apt_get update -qq
    APT_UPDATED=1
  fi
}

# Print the packages among "$@" that are not installed.
missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || printf '%s\n' "$p"
  done
}

# Install whatever of "$@" is missing; touch nothing otherwise.
ensure_packages() {
  local -a missing
  mapfile -t missing < <(missing_packages "$@")
  [ "${#missing[@]}" -eq 0 ] && return 0
  apt_update_once
  apt_get install -y -qq --no-install-recommends "${missing[@]}"
  changed "installed ${missing[*]}"
}

# What each role installs from the distribution, one role a line ("ROLE:
# PACKAGE..."). labctl's boxes are built with these packages installed (not
# enabled: labctl/providers/packages.py reads this block), so there the
# scripts find them in place; on any other box they install what is missing.
# The block lives here because lib.sh is the one file every guest is given.
ROLE_PACKAGES='
common: curl ca-certificates
timezone: tzdata
containerd: containerd runc
mysql: default-mysql-server default-mysql-client
jdk-17: openjdk-17-jre-headless
jdk-21: openjdk-21-jre-headless
jenkins-server: fontconfig
link: iptables
'

# role_packages ROLE: its packages, one a line; fail for a role not listed.
role_packages() {
  local role packages
  local -a names
  while read -r role packages; do
    if [ "$role" = "$1:" ]; then
      read -ra names <<<"$packages"
      printf '%s\n' "${names[@]}"
      return 0
    fi
  done <<<"$ROLE_PACKAGES"
  fail "no packages are listed for role $1 (ROLE_PACKAGES in lib.sh)"
}

# ensure_role_packages ROLE: install whatever of its packages is missing.
ensure_role_packages() {
  local listed
  local -a packages
  listed=$(role_packages "$1") || exit 3
  mapfile -t packages <<<"$listed"
  ensure_packages "${packages[@]}"
}

# put_file DEST MODE < content: write DEST only when its content or mode differ.
# Sets FILE_CHANGED=1 when it wrote, 0 otherwise (never fails on "no change").
put_file() {
  local dest=$1 mode=$2 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest" && [ "$(stat -c %a "$dest")" = "$mode" ]; then
    FILE_CHANGED=0
    rm -f "$tmp"
    return 0
  fi
  install -D -m "$mode" "$tmp" "$dest"
  rm -f "$tmp"
  # shellcheck disable=SC2034
  FILE_CHANGED=1
  changed "wrote $dest"
}

# ensure_enabled UNIT: systemd knows the unit's current file, and it is enabled.
# Call it right after the put_file that wrote the unit.
ensure_enabled() {
  if [ "$FILE_CHANGED" = 1 ]; then systemctl daemon-reload; fi
  if ! systemctl is-enabled --quiet "$1"; then
    systemctl enable --quiet "$1"
    changed "enabled $1"
  fi
}

# ensure_service NAME: enabled and running.
ensure_service() {
  FILE_CHANGED=0 ensure_enabled "$1"
  if ! systemctl is-active --quiet "$1"; then
    systemctl start "$1"
    changed "started $1"
  fi
}

# run_current SERVICE FILE...: SERVICE enabled and running on FILE... as they
# are now. A marker keeps the hash of the files it last (re)started on, so it
# restarts even when an earlier run wrote them but stopped before the restart,
# and when a package started it before they were written.
run_current() {
  local service=$1 marker="$LABCTL_STATE/$1.applied" want
  shift
  want=$(cat -- "$@" | sha256sum | cut -d' ' -f1)
  local stale=0
  if [ "$(cat "$marker" 2>/dev/null)" != "$want" ]; then stale=1; fi
  if [ "$stale" = 1 ]; then systemctl daemon-reload; fi
  FILE_CHANGED=0 ensure_enabled "$service"
  if ! systemctl is-active --quiet "$service"; then
    systemctl start "$service"
    changed "started $service"
  elif [ "$stale" = 1 ]; then
    systemctl restart "$service"
    changed "restarted $service on its new configuration"
  fi
  echo "$want" >"$marker"
}

# fail MESSAGE: one line labctl shows as the reason, then exit 3.
fail() {
  printf 'labctl: error: %s\n' "$*" >&2
  exit 3
}

# ensure_user NAME HOME: a system user with a login shell (for SSH) and HOME.
ensure_user() {
  if ! id -u "$1" >/dev/null 2>&1; then
    useradd --system --create-home --home-dir "$2" --shell /bin/bash "$1"
    changed "created user $1"
  fi
}

# ensure_dir PATH MODE OWNER
ensure_dir() {
  if [ ! -d "$1" ] || [ "$(stat -c '%a %U' "$1")" != "$2 $3" ]; then
    install -d -m "$2" -o "$3" -g "$3" "$1"
    changed "directory $1"
  fi
}
