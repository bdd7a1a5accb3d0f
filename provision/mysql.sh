#!/usr/bin/env bash
# MySQL or MariaDB, as the distribution ships it (default-mysql-server: MariaDB
# on Debian, MySQL 8 on Ubuntu), configured the same way on every server of
# the lab, whatever its role today: a switchover or failover moves roles
# without touching this file. Every server keeps a binary log of what it
# applies (so any replica can be promoted) and starts read-only: labctl opens
# the primary for writes, so a failed primary that comes back never takes
# writes beside its successor. Replication itself (users, snapshot,
# CHANGE ... SOURCE) is wired by labctl over SSH: the password never passes here.
# Environment: MYSQL_SERVER_ID, MYSQL_BIND_ADDRESS, MYSQL_GTID (1: MySQL's GTID mode), LAB_HOSTNAME.
set -euo pipefail
# shellcheck source=provision/lib.sh
. /var/tmp/labctl/lib.sh
: "${MYSQL_SERVER_ID:?}" "${MYSQL_BIND_ADDRESS:?}"
MYSQL_GTID=${MYSQL_GTID:-0}

ensure_role_packages mysql

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
net_timeout=slave_net_timeout
if [ "$flavor" = mysql ]; then
  version=$(mysqld --version | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1)
  if [ "$(printf '%s\n8.0.26\n' "$version" | sort -V | head -n1)" = 8.0.26 ]; then
    replica_updates=log_replica_updates
    net_timeout=replica_net_timeout
  fi
fi

config=$({
  echo "# Written by labctl: this server's place in the lab's replication topology."
  echo "[mysqld]"
  echo "server_id = $MYSQL_SERVER_ID"
  echo "bind_address = $MYSQL_BIND_ADDRESS"
  echo "report_host = ${LAB_HOSTNAME:-$(hostname)}"
  echo "skip_name_resolve = ON"
  echo "log_bin = mysql-bin"
  echo "binlog_format = ROW"
  echo "$replica_updates = ON"
  echo "relay_log = relay-bin"
  # a replica cut off from its source says so within 10 s, not the default 60
  # (its source's heartbeat comes every 5 s)
  echo "$net_timeout = 10"
  echo "read_only = ON"
  if [ "$flavor" = mysql ]; then echo "super_read_only = ON"; fi
  if [ "$MYSQL_GTID" = 1 ] && [ "$flavor" = mysql ]; then
    echo "gtid_mode = ON"
    echo "enforce_gtid_consistency = ON"
  fi
})
put_file "$conf" 644 <<<"$config"
run_current "$service" "$conf"
