#!/usr/bin/env bash
# redis.sh - a throwaway Redis for tests (Debian's redis-server, installed by scripts/deps.sh). Stands
# in for the chart's built-in Redis (`<release>-redis-0`).
#
# Usage:
#   redis.sh start STATEDIR PORT    start detached on 127.0.0.1:PORT (no persistence), wait until it
#                                   answers PING, print REDIS_ADDR=127.0.0.1:PORT
#   redis.sh stop STATEDIR          stop it; no-op when not running
# REDIS_PASSWORD (env, optional): the password redis-server requires (as the chart's --requirepass
# from Secret <release>-redis). It goes into STATEDIR/redis.conf (0600), never on a command line.
set -euo pipefail

NAME=redis
# shellcheck source=lib/daemon.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/daemon.sh"
usage() {
  echo "usage: $0 start STATEDIR PORT | stop STATEDIR" >&2
  exit 2
}

cmd_start() {
  local state port pid i
  state=$(abs_dir "${1:-}")
  port=${2:-}
  [[ $port =~ ^[0-9]+$ ]] || usage
  command -v redis-server >/dev/null || die "redis-server not installed (run scripts/deps.sh)"
  pid=$(pid_of "$state/redis.pid" redis-server)
  if [[ -n $pid ]]; then
    [[ $(<"$state/redis.port") == "$port" ]] || die "redis in $state already runs on port $(<"$state/redis.port")"
    echo "REDIS_ADDR=127.0.0.1:$port"
    return 0
  fi
  mkdir -p "$state"
  (
    umask 077
    {
      echo "bind 127.0.0.1"
      echo "port $port"
      echo "dir $state"
      echo "save \"\""
      echo "appendonly no"
      echo "daemonize no"
      echo "logfile $state/redis.log"
      if [[ -n ${REDIS_PASSWORD:-} ]]; then
        # redis.conf quoting: backslash and double quote escaped inside "..."
        local p=${REDIS_PASSWORD//\\/\\\\}
        p=${p//\"/\\\"}
        echo "requirepass \"$p\""
      fi
    } >"$state/redis.conf"
  )
  setsid redis-server "$state/redis.conf" </dev/null >/dev/null 2>&1 &
  pid=$!
  echo "$pid" >"$state/redis.pid"
  echo "$port" >"$state/redis.port"
  for ((i = 0; i < 100; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    # REDISCLI_AUTH: the password without a command-line argument
    if REDISCLI_AUTH=${REDIS_PASSWORD:-} redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
      echo "REDIS_ADDR=127.0.0.1:$port"
      return 0
    fi
    sleep 0.05
  done
  kill "$pid" 2>/dev/null || true
  rm -f "$state/redis.pid" "$state/redis.port"
  tail -n 20 "$state/redis.log" >&2 || true
  die "redis-server on 127.0.0.1:$port did not answer PING"
}

cmd_stop() {
  local state pid
  state=$(abs_dir "${1:-}")
  pid=$(pid_of "$state/redis.pid" redis-server)
  if [[ -n $pid ]]; then stop_pid "$pid"; fi
  rm -f "$state/redis.pid" "$state/redis.port"
}

case "${1:-}" in
  start) [[ $# == 3 ]] || usage; cmd_start "$2" "$3" ;;
  stop) [[ $# == 2 ]] || usage; cmd_stop "$2" ;;
  *) usage ;;
esac
