#!/usr/bin/env bash
# pg.sh - throwaway PostgreSQL 15 clusters for tests (never touches the system cluster).
#
# Usage:
#   pg.sh install                 install postgresql-15 (apt) if its initdb is missing
#   pg.sh init DATADIR            new cluster; superuser role "csghub" (like the opencsghq/postgres image)
#                                 and database "csghub"; no password yet. Auth: unix socket trust,
#                                 TCP 127.0.0.1/::1 scram-sha-256 (set one with ALTER ROLE ... PASSWORD)
#   pg.sh start DATADIR PORT      start on 127.0.0.1:PORT, wait until ready, print on stdout:
#                                   PGHOST=<socket dir> PGPORT=<port>
#                                 log: DATADIR/../pg.log. Durability is off (fsync etc.): tests only.
#   pg.sh stop DATADIR            fast shutdown; no-op when not running
#   pg.sh clone TEMPLATE NEWDIR   copy a stopped cluster (fresh per-test state in well under a second)
#
# Run as root (the usual case in tests) the server runs as OS user postgres, because initdb and
# postgres refuse to run as root; parents of DATADIR are made traversable for postgres if needed.
# DATADIR must not contain whitespace.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
SUPERUSER=csghub
PGOS_USER=postgres

log() { printf '%s pg.sh: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() {
  echo "usage: $0 install | init DATADIR | start DATADIR PORT | stop DATADIR | clone TEMPLATE NEWDIR" >&2
  exit 2
}

# as_pg <command...>: run as the postgres OS user when we are root (from / so its cwd is readable)
as_pg() {
  if [[ $EUID == 0 ]]; then
    (cd / && runuser -u "$PGOS_USER" -- "$@")
  else
    (cd / && "$@")
  fi
}

need_pg() {
  [[ -x $PGBIN/initdb ]] || die "$PGBIN/initdb missing: run '$0 install' (or scripts/deps.sh)"
  if [[ $EUID == 0 ]]; then
    id "$PGOS_USER" >/dev/null 2>&1 || die "OS user $PGOS_USER missing (it comes with the postgresql package)"
  fi
}

abs_dir() {
  [[ -n $1 ]] || usage
  [[ $1 != *[[:space:]]* ]] || die "path must not contain whitespace: '$1'"
  realpath -m -- "$1"
}

# make_traversable <dir>: as root, let postgres reach <dir> by adding o+x to ancestors lacking it
# (e.g. Go's t.TempDir() creates 0700 directories)
make_traversable() {
  [[ $EUID == 0 ]] || return 0
  local d=$1
  if runuser -u "$PGOS_USER" -- test -x "$d" 2>/dev/null; then return 0; fi
  while [[ $d != / ]]; do
    if [[ -d $d && -z $(find "$d" -maxdepth 0 -perm -o+x) ]]; then
      chmod o+x "$d"
      log "chmod o+x $d (so that $PGOS_USER can reach the data directory)"
    fi
    d=$(dirname "$d")
  done
}

# prepare_dir <dir>: an empty (or new) directory owned by postgres, mode 0700
prepare_dir() {
  local d=$1
  if [[ -e $d ]] && [[ -n $(ls -A "$d" 2>/dev/null) ]]; then die "$d exists and is not empty"; fi
  mkdir -p "$d"
  chmod 0700 "$d"
  make_traversable "$(dirname "$d")"
  if [[ $EUID == 0 ]]; then chown "$PGOS_USER:" "$d"; fi
}

# socket_dir <datadir> <port>: the data dir itself unless the socket path would exceed the
# ~107-byte sun_path limit, then a short per-datadir directory under /tmp
socket_dir() {
  local d=$1 port=$2
  if ((${#d} + ${#port} + 12 <= 100)); then
    echo "$d"
  else
    echo "/tmp/pgsock-$(printf '%s' "$d" | sha256sum | cut -c1-16)"
  fi
}

running() { [[ -f $1/postmaster.pid ]] && as_pg "$PGBIN/pg_ctl" status -D "$1" >/dev/null 2>&1; }

cmd_install() {
  if [[ -x $PGBIN/initdb ]]; then return 0; fi
  [[ $EUID == 0 ]] || die "installing postgresql-15 needs root"
  log "installing postgresql-15"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
  [[ -x $PGBIN/initdb ]] || die "postgresql-15 installed but $PGBIN/initdb is missing"
}

cmd_init() {
  local d
  d=$(abs_dir "${1:-}")
  need_pg
  prepare_dir "$d"
  local out
  out=$(as_pg "$PGBIN/initdb" -D "$d" -U "$SUPERUSER" --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 --no-sync --no-instructions 2>&1) ||
    { printf '%s\n' "$out" >&2; die "initdb failed for $d"; }
  # exactly these rules (initdb's defaults also add replication lines)
  cat >"$d/pg_hba.conf" <<'EOF'
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   scram-sha-256
host    all       all   ::1/128        scram-sha-256
EOF
  if [[ $EUID == 0 ]]; then chown "$PGOS_USER:" "$d/pg_hba.conf"; fi
  chmod 0600 "$d/pg_hba.conf"
  # the image's superuser also owns a database of the same name (psql -U csghub connects to it);
  # single-user mode creates it without starting a server
  out=$(echo "CREATE DATABASE $SUPERUSER OWNER $SUPERUSER;" |
    as_pg "$PGBIN/postgres" --single -D "$d" -c fsync=off postgres 2>&1) ||
    { printf '%s\n' "$out" >&2; die "creating database $SUPERUSER failed"; }
}

cmd_start() {
  local d port sock logf pid_port
  d=$(abs_dir "${1:-}")
  port=${2:-}
  [[ $port =~ ^[0-9]+$ ]] || usage
  need_pg
  [[ -f $d/PG_VERSION ]] || die "$d is not a PostgreSQL data directory (run: $0 init $d)"
  sock=$(socket_dir "$d" "$port")
  if running "$d"; then
    # idempotent when asked for the same port (postmaster.pid line 4 is the port)
    pid_port=$(sed -n 4p "$d/postmaster.pid")
    [[ $pid_port == "$port" ]] || die "$d is already running on port $pid_port"
    echo "PGHOST=$sock PGPORT=$port"
    return 0
  fi
  make_traversable "$(dirname "$d")"
  if [[ $sock != "$d" ]]; then
    mkdir -p "$sock"
    if [[ $EUID == 0 ]]; then chown "$PGOS_USER:" "$sock"; fi
  fi
  logf=$(dirname "$d")/pg.log
  touch "$logf"
  if [[ $EUID == 0 ]]; then chown "$PGOS_USER:" "$logf"; fi
  # durability off: these clusters are thrown away after the test
  if ! as_pg "$PGBIN/pg_ctl" start -D "$d" -l "$logf" -w -t 60 -s \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $sock -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    >/dev/null; then
    tail -n 20 "$logf" >&2 || true
    die "PostgreSQL in $d did not start on port $port (log: $logf)"
  fi
  echo "PGHOST=$sock PGPORT=$port"
}

cmd_stop() {
  local d port
  d=$(abs_dir "${1:-}")
  need_pg
  if running "$d"; then
    port=$(sed -n 4p "$d/postmaster.pid")
    as_pg "$PGBIN/pg_ctl" stop -D "$d" -m fast -w -t 60 -s || die "stopping PostgreSQL in $d failed"
    local sock
    sock=$(socket_dir "$d" "$port")
    if [[ $sock != "$d" ]]; then rmdir "$sock" 2>/dev/null || true; fi
  fi
}

cmd_clone() {
  local src dst
  src=$(abs_dir "${1:-}")
  dst=$(abs_dir "${2:-}")
  [[ -f $src/PG_VERSION ]] || die "$src is not a PostgreSQL data directory"
  # a running template would be copied mid-write
  if [[ -f $src/postmaster.pid ]]; then die "template $src is running (or was not shut down cleanly): stop it first"; fi
  if [[ -e $dst ]]; then
    [[ -z $(ls -A "$dst") ]] || die "$dst exists and is not empty"
    rmdir "$dst"
  fi
  mkdir -p "$(dirname "$dst")"
  cp -a "$src" "$dst"
  make_traversable "$(dirname "$dst")"
}

case "${1:-}" in
  install) cmd_install ;;
  init) [[ $# == 2 ]] || usage; cmd_init "$2" ;;
  start) [[ $# == 3 ]] || usage; cmd_start "$2" "$3" ;;
  stop) [[ $# == 2 ]] || usage; cmd_stop "$2" ;;
  clone) [[ $# == 3 ]] || usage; cmd_clone "$2" "$3" ;;
  *) usage ;;
esac
