# daemon.sh - sourced by the scripts that build and run a throwaway server for the tests
# (ferretdb.sh, minio.sh, redis.sh): their logging, the pid file of a detached server, its stop,
# and a Go build done once per pinned version under a lock (parallel test packages may ask for
# the same binary at the same time).
#
# The sourcing script sets NAME (its log name, e.g. minio) and, to build, VERSION, DIR (the cache
# folder for that version) and BIN (the binary in it), and defines usage().

log() { printf '%s %s.sh: %s\n' "$(date +%T)" "$NAME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

abs_dir() {
  [[ -n $1 ]] || usage
  realpath -m -- "$1"
}

# pid_of <pidfile> <text>: the pid in pidfile when that process is alive and its command line
# contains text (a recycled pid is not ours), or nothing
pid_of() {
  local pf=$1 text=$2 pid
  [[ -f $pf ]] || return 0
  pid=$(<"$pf")
  if [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$text"; then
    echo "$pid"
  fi
}

# stop_pid <pid>: SIGTERM, then SIGKILL after 10s
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "$NAME (pid $pid) ignored SIGTERM for 10s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

go_env() {
  if [[ -d /usr/local/go/bin ]]; then PATH=/usr/local/go/bin:$PATH; fi
  command -v go >/dev/null || die "go not found on PATH"
  export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
}

built() { [[ -f $DIR/.stamp && -x $BIN && $(<"$DIR/.stamp") == "$VERSION" ]]; }

# build_once <function>: unless BIN of VERSION is cached, run function (which writes BIN, or dies)
# with Go's environment set, under a lock; the stamp is written only once it succeeded.
build_once() {
  local fn=$1 t0=$SECONDS
  if built; then return 0; fi
  mkdir -p "$DIR"
  exec 8>"$DIR.lock"
  flock 8
  if built; then
    exec 8>&-
    return 0
  fi
  go_env
  log "building $NAME $VERSION (first time only)"
  rm -f "$DIR/.stamp" "$BIN"
  "$fn"
  [[ -x $BIN ]] || die "the build left no $BIN"
  echo "$VERSION" >"$DIR/.stamp"
  exec 8>&-
  log "$NAME $VERSION built in $((SECONDS - t0))s"
}
