#!/usr/bin/env bash
# ferretdb.sh - a throwaway MongoDB-wire-protocol server for tests: FerretDB v1 (documents stored in
# PostgreSQL), built from the Go module proxy, pinned and cached. Stands in for the mongo that CSGHub
# Dataflow <= v1.17.0 keeps its task logs in.
#
# Usage:
#   ferretdb.sh build                        build (no-op when cached)
#   ferretdb.sh path                         print the binary path (building it if needed)
#   ferretdb.sh start STATEDIR PORT PG_URL   start detached on 127.0.0.1:PORT, wait until it serves
#                                            authenticated commands, print: MONGO_URL=mongodb://...
#   ferretdb.sh stop STATEDIR                stop it; no-op when not running
# Output: $CSGHUB_CACHE/tools/ferretdb-<version>/ferretdb (CSGHUB_CACHE defaults to <repo>/.cache).
# STATEDIR gets ferretdb.pid, ferretdb.log and FerretDB's state.json.
#
# PG_URL: a libpq-style URL of an EXISTING database that FerretDB may create schemas in (one schema
# per Mongo database), e.g. from `scripts/pg.sh start` plus `createdb ferretdb`:
#   postgres://csghub@/ferretdb?host=<PGHOST>&port=<PGPORT>          (unix socket, trust)
#   postgres://csghub:<pw>@127.0.0.1:<PGPORT>/ferretdb                (TCP, scram-sha-256)
#
# Authentication (env; the Mongo user is created on the first start against a fresh database):
#   FDB_USER (default root), FDB_PASSWORD (default example): like MONGO_INITDB_ROOT_USERNAME/PASSWORD
#   FDB_AUTH=scram (default): FerretDB's own user store (admin.system.users, flag
#       --test-enable-new-auth); clients log in exactly as to a real mongo: SCRAM-SHA-256 (or -1),
#       authSource=admin, no authMechanism needed. FerretDB itself reaches PostgreSQL with PG_URL.
#   FDB_AUTH=plain: FerretDB v1's default mode: the client must use authMechanism=PLAIN and its
#       user/password are passed through to PostgreSQL, so this script creates/updates a PG role
#       FDB_USER with FDB_PASSWORD (connecting with PG_URL, which must be a superuser's). PG_URL must
#       then be a TCP URL: over the trust socket PostgreSQL would accept any password.
# Only paths/URLs go to stdout; progress goes to stderr.
set -euo pipefail

FERRETDB_VERSION=v1.24.2
FERRETDB_MODULE=github.com/FerretDB/FerretDB

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CACHE=${CSGHUB_CACHE:-$REPO/.cache}
DIR=$CACHE/tools/ferretdb-$FERRETDB_VERSION
BIN=$DIR/ferretdb
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
NAME=ferretdb VERSION=$FERRETDB_VERSION
# shellcheck source=lib/daemon.sh
source "$HERE/lib/daemon.sh"
usage() {
  echo "usage: $0 build | path | start STATEDIR PORT PG_URL | stop STATEDIR" >&2
  exit 2
}

cmd_build() { build_once build_ferretdb; }

build_ferretdb() {
  local moddir src
  moddir=$(cd / && go mod download -json "$FERRETDB_MODULE@$FERRETDB_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d $moddir ]] || die "downloading $FERRETDB_MODULE@$FERRETDB_VERSION failed"
  # A plain `go install ...@version` builds, but the binary panics at startup: it embeds
  # build/version/version.txt, which `git describe` writes and the module zip lacks. So build a
  # copy of the module source with that file added (no replace directives are involved).
  src=$DIR/src
  rm -rf "$src"
  cp -r "$moddir" "$src"
  chmod -R u+w "$src"
  echo "$FERRETDB_VERSION" >"$src/build/version/version.txt"
  # ferretdb_no_sqlite: only the PostgreSQL backend is used, and the pure-Go SQLite is a slow compile
  if ! (cd "$src" && go build -trimpath -tags ferretdb_no_sqlite -ldflags '-s -w' -o "$BIN" ./cmd/ferretdb); then
    rm -rf "$src"
    die "building FerretDB $FERRETDB_VERSION failed"
  fi
  rm -rf "$src"
  local got
  got=$("$BIN" --version 2>&1 | sed -n 's/^version: //p') || true
  [[ $got == "$FERRETDB_VERSION" ]] || die "built ferretdb reports version '$got', want $FERRETDB_VERSION"
}

sql_quote() { printf "'%s'" "${1//\'/\'\'}"; }

# plain_role <pg_url> <user> <password>: the PG role that PLAIN logins are passed through to
plain_role() {
  local url=$1 user=$2 pass=$3 ident lit
  [[ -x $PGBIN/psql ]] || die "$PGBIN/psql missing (FDB_AUTH=plain creates a PostgreSQL role with it)"
  [[ $user =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "FDB_USER must be a plain identifier for FDB_AUTH=plain: '$user'"
  ident="\"$user\""
  lit=$(sql_quote "$pass")
  # FerretDB creates one schema per Mongo database, so the role needs CREATE on the database
  "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$url" >/dev/null <<EOF || die "creating PostgreSQL role $user via PG_URL failed"
SELECT format('CREATE ROLE %I LOGIN', $(sql_quote "$user"))
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = $(sql_quote "$user")) \gexec
ALTER ROLE $ident LOGIN PASSWORD $lit;
SELECT format('GRANT ALL ON DATABASE %I TO %I', current_database(), $(sql_quote "$user")) \gexec
EOF
}

cmd_start() {
  local state port pgurl user pass auth pid url
  state=$(abs_dir "${1:-}")
  port=${2:-}
  pgurl=${3:-}
  if ! [[ $port =~ ^[0-9]+$ && -n $pgurl ]]; then usage; fi
  user=${FDB_USER:-root}
  pass=${FDB_PASSWORD:-example}
  auth=${FDB_AUTH:-scram}
  [[ $auth == scram || $auth == plain ]] || die "FDB_AUTH must be scram or plain, not '$auth'"
  url="mongodb://$(urlenc "$user"):$(urlenc "$pass")@127.0.0.1:$port/?authSource=admin"
  if [[ $auth == plain ]]; then url+="&authMechanism=PLAIN"; fi

  pid=$(pid_of "$state/ferretdb.pid" ferretdb)
  if [[ -n $pid ]]; then
    # idempotent when asked for the same port
    [[ $(<"$state/ferretdb.port") == "$port" ]] || die "ferretdb in $state already runs on port $(<"$state/ferretdb.port")"
    echo "MONGO_URL=$url"
    return 0
  fi
  cmd_build
  mkdir -p "$state"
  # fail fast with PostgreSQL's own message: FerretDB itself retries a bad PG_URL for 30s
  if [[ -x $PGBIN/psql ]]; then
    local err
    err=$("$PGBIN/psql" -X -q -A -t -d "$pgurl" -c 'SELECT 1' 2>&1 >/dev/null) ||
      die "cannot connect to PG_URL ($(sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#' <<<"$pgurl")): $err"
  fi
  if [[ $auth == plain ]]; then plain_role "$pgurl" "$user" "$pass"; fi

  local -a args=(
    --handler=postgresql
    --listen-addr="127.0.0.1:$port" --state-dir="$state"
    --debug-addr=- --telemetry=disable --log-level=info --log-format=console
  )
  if [[ $auth == scram ]]; then
    # the first start creates database "admin" and user FDB_USER in it (skipped when "admin" exists)
    args+=(--test-enable-new-auth --setup-database=admin --setup-username="$user")
  fi
  local logf=$state/ferretdb.log
  # kong reads FERRETDB_<FLAG> variables: drop the caller's, and pass the secrets that way rather
  # than on the command line (visible in ps)
  local -a envargs=() v
  while IFS= read -r v; do envargs+=(-u "$v"); done < <(compgen -e | grep '^FERRETDB_' || true)
  envargs+=("FERRETDB_POSTGRESQL_URL=$pgurl")
  if [[ $auth == scram ]]; then envargs+=("FERRETDB_SETUP_PASSWORD=$pass"); fi
  # setsid: detached from the caller's process group and terminal
  env "${envargs[@]}" setsid "$BIN" "${args[@]}" </dev/null >>"$logf" 2>&1 &
  pid=$!
  echo "$pid" >"$state/ferretdb.pid"
  echo "$port" >"$state/ferretdb.port"

  # ready = it answers an authenticated ping (which reaches PostgreSQL); `ferretdb ping` speaks only SCRAM
  local i ok="" out why="did not become ready"
  for ((i = 0; i < 300; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then why="exited"; break; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      if [[ $auth == plain ]]; then ok=1; break; fi
      if out=$(FERRETDB_SETUP_PASSWORD=$pass "$BIN" ping --listen-addr="127.0.0.1:$port" --test-enable-new-auth \
        --setup-database=admin --setup-username="$user" --setup-timeout=5s --log-level=error 2>&1); then
        ok=1
        break
      fi
      if [[ $out == *AuthenticationFailed* ]]; then
        # the user is only created when FerretDB finds no "admin" database in PG_URL
        why="rejects $user's password (PG_URL already holds a FerretDB \"admin\" database from a start with other credentials? use a fresh database)"
        break
      fi
    fi
    sleep 0.1
  done
  if [[ -z $ok ]]; then
    stop_pid "$pid"
    rm -f "$state/ferretdb.pid" "$state/ferretdb.port"
    tail -n 20 "$logf" >&2 || true
    die "ferretdb on 127.0.0.1:$port $why (log: $logf)"
  fi
  echo "MONGO_URL=$url"
}

# urlenc <s>: percent-encode for the userinfo part of a mongodb:// URL
urlenc() {
  local s=$1 out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9._~-]) out+=$c ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

cmd_stop() {
  local state pid
  state=$(abs_dir "${1:-}")
  pid=$(pid_of "$state/ferretdb.pid" ferretdb)
  if [[ -n $pid ]]; then stop_pid "$pid"; fi
  rm -f "$state/ferretdb.pid" "$state/ferretdb.port"
}

case "${1:-}" in
  build) [[ $# == 1 ]] || usage; cmd_build ;;
  path) [[ $# == 1 ]] || usage; cmd_build; echo "$BIN" ;;
  start) [[ $# == 4 ]] || usage; cmd_start "$2" "$3" "$4" ;;
  stop) [[ $# == 2 ]] || usage; cmd_stop "$2" ;;
  *) usage ;;
esac
