#!/usr/bin/env bash
# MySQL or MariaDB, as the distribution ships it (default-mysql-server: MariaDB
# on Debian, MySQL 8 on Ubuntu), configured for its place in the replication
# topology. Replication itself (users, snapshot, CHANGE ... SOURCE) is wired by
# labctl over SSH afterwards: the password never passes through here.
# Environment: MYSQL_SERVER_ID, MYSQL_BIND_ADDRESS, MYSQL_ROLE (primary|replica),
#   MYSQL_LOG_REPLICA_UPDATES (1: a chain's middle), MYSQL_GTID (1: GTIDs), LAB_HOSTNAME.
set -euo pipefail
# shellcheck source=provision/lib.sh
. /var/tmp/labctl/lib.sh
: "${MYSQL_SERVER_ID:?}" "${MYSQL_BIND_ADDRESS:?}" "${MYSQL_ROLE:?}"
MYSQL_LOG_REPLICA_UPDATES=${MYSQL_LOG_REPLICA_UPDATES:-0}
MYSQL_GTID=${MYSQL_GTID:-0}

ensure_packages default-mysql-server default-mysql-client

if [ -d /etc/mysql/mariadb.conf.d ]; then
  flavor=mariadb
  conf=/etc/mysql/mariadb.conf.d/99-labctl.cnf
  service=mariadb
else
  flavor=mysql
  conf=/etc/mysql/mysql.conf.d/99-labctl.cnf
  service=mysql
fi

# MySQL renamed the variables in 8.0.26 (log_slave_updates -> log_replica_updates).
replica_updates=log_slave_updates
if [ "$flavor" = mysql ]; then
  version=$(mysqld --version | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1)
  if [ "$(printf '%s\n8.0.26\n' "$version" | sort -V | head -n1)" = 8.0.26 ]; then
    replica_updates=log_replica_updates
  fi
fi

config=$({
  echo "# Written by labctl: this server's place in the lab's replication topology."
  echo "[mysqld]"
  echo "server_id = $MYSQL_SERVER_ID"
  echo "bind_address = $MYSQL_BIND_ADDRESS"
  echo "report_host = ${LAB_HOSTNAME:-$(hostname)}"
  echo "skip_name_resolve = ON"
  if [ "$MYSQL_ROLE" = primary ] || [ "$MYSQL_LOG_REPLICA_UPDATES" = 1 ] || [ "$MYSQL_GTID" = 1 ]; then
    echo "log_bin = mysql-bin"
    echo "binlog_format = ROW"
  fi
  if [ "$MYSQL_ROLE" = replica ]; then
    echo "relay_log = relay-bin"
    echo "read_only = ON"
    if [ "$flavor" = mysql ]; then echo "super_read_only = ON"; fi
  fi
  if [ "$MYSQL_LOG_REPLICA_UPDATES" = 1 ]; then echo "$replica_updates = ON"; fi
  if [ "$MYSQL_GTID" = 1 ] && [ "$flavor" = mysql ]; then
    echo "gtid_mode = ON"
    echo "enforce_gtid_consistency = ON"
  fi
})
put_file "$conf" 644 <<<"$config"
run_current "$service" "$conf"
