#!/usr/bin/env bash
# run.sh - what `make bench` runs: build the plugin, then measure it (scripts/bench/main.go).
#
# Usage: scripts/bench/run.sh [bench flags]      e.g. -size-mb 256 -json .cache/bench.json
#   (go run ./scripts/bench -h lists the flags)
# Environment:
#   BENCH_FLAGS  extra flags, split on whitespace, put before the arguments (handy with make:
#                make bench BENCH_FLAGS="-size-mb 256")
#   GO           go binary (default: go on PATH, else /usr/local/go/bin/go)
# Output: the figures table on stdout (and -json FILE); progress on stderr. Exit status: 0 when
# every figure was measured (targets missed included), 1 on an error, 130 when interrupted.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
go_bin=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[[ -x $go_bin ]] || { echo "run.sh: go not found (set GO)" >&2; exit 1; }
PATH="$(dirname "$go_bin"):$PATH"
export PATH

cd "$repo"
# the binary the bench measures is the one `make build` makes (same flags)
make --no-print-directory build GO="$go_bin" >&2

# compile first so that the bench's own process (not `go run`'s) gets the signals
# and its pid is what the cluster and PostgreSQL watchdogs follow
mkdir -p .cache/bench
"$go_bin" build -o .cache/bench/bench ./scripts/bench
read -r -a extra <<<"${BENCH_FLAGS:-}"
exec .cache/bench/bench "${extra[@]}" "$@"
