#!/usr/bin/env bash
# A Java runtime from the distribution's packages (Jenkins and its agents run on it).
# Environment: JDK_VERSION (17 or 21).
set -euo pipefail
# shellcheck source=provision/lib.sh
. /var/tmp/labctl/lib.sh
: "${JDK_VERSION:?}"

package="openjdk-${JDK_VERSION}-jre-headless"
if [ -n "$(missing_packages "$package")" ]; then
  apt_update_once
  if ! apt-cache show "$package" >/dev/null 2>&1; then
    fail "$package is not in this guest's distribution: pick another --jdk (Debian 12 ships 17)"
  fi
fi
ensure_packages "$package"
java -version 2>&1 | head -n1
