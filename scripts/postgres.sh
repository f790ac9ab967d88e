#!/usr/bin/env bash
# A private PostgreSQL cluster on loopback for the shared LangGraph checkpointer
# (tests, local scale-out). Installs Debian's postgresql when it is missing.
#
#   scripts/postgres.sh start DIR [PORT]   -> prints postgresql://postgres@127.0.0.1:PORT/postgres
#   scripts/postgres.sh stop DIR
#
# The cluster lives in DIR (created), listens on 127.0.0.1 only, trusts local
# connections (a throwaway cluster: never point it at real data), and its socket goes
# to DIR too. As root, the server runs as the `postgres` user (initdb refuses root).
set -euo pipefail

usage() { echo "usage: $0 start DIR [PORT] | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
action=$1
dir=$(realpath -m "$2")

find_bin() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$found" ] && command -v pg_ctl >/dev/null 2>&1; then
    found=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
  fi
  echo "$found"
}

as_owner() {  # run a command as the cluster's owner
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/sh -c "$*"
  else
    sh -c "$*"
  fi
}

bin=$(find_bin)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "$0: PostgreSQL is not installed and installing it needs root (apt-get install postgresql)" >&2
    exit 3
  fi
  echo "$0: installing postgresql (Debian)" >&2
  { apt-get install -y postgresql >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y postgresql >/dev/null 2>&1; }; } || {
    echo "$0: could not install postgresql with apt-get" >&2; exit 3; }
  bin=$(find_bin)
fi

case "$action" in
  start)
    port=${3:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "'$bin/initdb' -D '$dir/data' -U postgres --auth=trust --encoding=UTF8 --no-instructions" >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2; exit 1; }
    fi
    as_owner "'$bin/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w -t 60 -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1\" start" >/dev/null || {
      cat "$dir/server.log" >&2; exit 1; }
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    [ -f "$dir/data/postmaster.pid" ] || exit 0
    as_owner "'$bin/pg_ctl' -D '$dir/data' -m fast -w stop" >/dev/null
    ;;
  *) usage ;;
esac
