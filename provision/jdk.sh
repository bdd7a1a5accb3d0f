#!/usr/bin/env bash
# A Java runtime from the distribution's packages (Jenkins and its agents run on it).
# Environment: JDK_VERSION (17 or 21).
set -euo pipefail
# shellcheck source=provision/lib.sh
. /var/tmp/labctl/lib.sh
: "${JDK_VERSION:?}"

# one package: the runtime, which a distribution may not ship
package=$(role_packages "jdk-$JDK_VERSION") || exit 3
if [ -n "$(missing_packages "$package")" ]; then
  apt_update_once
  if ! apt-cache show "$package" >/dev/null 2>&1; then
    fail "$package is not in this guest's distribution: pick another --jdk (Debian 12 ships 17)"
  fi
fi
ensure_role_packages "jdk-$JDK_VERSION"
java -version 2>&1 | head -n1
