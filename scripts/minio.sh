#!/usr/bin/env bash
# minio.sh - a real S3 server for tests: the MinIO server, built from the Go module proxy, pinned
# and cached. Stands in for the chart's built-in object storage (`<release>-minio-0`) and for an
# external S3 endpoint.
#
# Usage:
#   minio.sh build                     build (no-op when cached)
#   minio.sh path                      print the binary path (building it if needed)
#   minio.sh start STATEDIR PORT       start detached on 127.0.0.1:PORT with data under STATEDIR,
#                                      wait until /minio/health/live answers, print MINIO_URL=http://...
#   minio.sh stop STATEDIR             stop it; no-op when not running
# Credentials (env, as the chart's Secret passes them to the image): MINIO_ROOT_USER (default
# minio), MINIO_ROOT_PASSWORD (default minio-test-password, at least 8 characters).
# Output: $CSGHUB_CACHE/tools/minio-<version>/minio (CSGHUB_CACHE defaults to <repo>/.cache).
# STATEDIR gets minio.pid, minio.port, minio.log and the data folder.
set -euo pipefail

# MinIO's releases are tags named RELEASE.<date>, not semver: the module proxy serves commits as
# pseudo-versions. This one is the newest it served when pinned.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MINIO_MODULE=github.com/minio/minio

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CACHE=${CSGHUB_CACHE:-$REPO/.cache}
DIR=$CACHE/tools/minio-$MINIO_VERSION
BIN=$DIR/minio

NAME=minio VERSION=$MINIO_VERSION
# shellcheck source=lib/daemon.sh
source "$HERE/lib/daemon.sh"
usage() {
  echo "usage: $0 build | path | start STATEDIR PORT | stop STATEDIR" >&2
  exit 2
}

cmd_build() { build_once build_minio; }

build_minio() {
  # the module has no replace directives, so `go install module@version` builds it as released;
  # nice: the build is long and the tests' machine is small
  if ! GOBIN=$DIR nice -n 10 go install -trimpath -ldflags '-s -w' "$MINIO_MODULE@$MINIO_VERSION"; then
    die "building MinIO $MINIO_VERSION failed"
  fi
  [[ -x $BIN ]] || die "go install left no $BIN"
  "$BIN" --version >/dev/null 2>&1 || die "built minio does not run"
}

# live <port>: GET /minio/health/live answers 200
live() {
  local port=$1 status
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET /minio/health/live HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  IFS= read -r -t 5 status <&3 || status=""
  exec 3>&-
  [[ $status == "HTTP/1."?" 200"* ]]
}

cmd_start() {
  local state port pid
  state=$(abs_dir "${1:-}")
  port=${2:-}
  [[ $port =~ ^[0-9]+$ ]] || usage
  pid=$(pid_of "$state/minio.pid" "$state/data")
  if [[ -n $pid ]]; then
    [[ $(<"$state/minio.port") == "$port" ]] || die "minio in $state already runs on port $(<"$state/minio.port")"
    echo "MINIO_URL=http://127.0.0.1:$port"
    return 0
  fi
  cmd_build
  mkdir -p "$state/data"
  local logf=$state/minio.log
  # credentials through the environment, as the chart's Secret gives them (not on the command line,
  # visible in ps); no console, no update check, no telemetry
  MINIO_ROOT_USER=${MINIO_ROOT_USER:-minio} MINIO_ROOT_PASSWORD=${MINIO_ROOT_PASSWORD:-minio-test-password} \
    MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CALLHOME_ENABLE=off \
    setsid "$BIN" server --quiet --address "127.0.0.1:$port" "$state/data" </dev/null >>"$logf" 2>&1 &
  pid=$!
  echo "$pid" >"$state/minio.pid"
  echo "$port" >"$state/minio.port"
  local i
  for ((i = 0; i < 300; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if live "$port" 2>/dev/null; then
      echo "MINIO_URL=http://127.0.0.1:$port"
      return 0
    fi
    sleep 0.1
  done
  stop_pid "$pid"
  rm -f "$state/minio.pid" "$state/minio.port"
  tail -n 20 "$logf" >&2 || true
  die "minio on 127.0.0.1:$port did not become live (log: $logf)"
}

cmd_stop() {
  local state pid
  state=$(abs_dir "${1:-}")
  pid=$(pid_of "$state/minio.pid" "$state/data")
  if [[ -n $pid ]]; then stop_pid "$pid"; fi
  rm -f "$state/minio.pid" "$state/minio.port"
}

case "${1:-}" in
  build) [[ $# == 1 ]] || usage; cmd_build ;;
  path) [[ $# == 1 ]] || usage; cmd_build; echo "$BIN" ;;
  start) [[ $# == 3 ]] || usage; cmd_start "$2" "$3" ;;
  stop) [[ $# == 2 ]] || usage; cmd_stop "$2" ;;
  *) usage ;;
esac
