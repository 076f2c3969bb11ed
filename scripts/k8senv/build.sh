#!/usr/bin/env bash
# build.sh - build the local Kubernetes test stack from the Go module proxy, pinned and cached.
#
# Output (printed on stdout when done): $CSGHUB_CACHE/k8senv/k8s-<v>-etcd-<v>-kwok-<v>/ with
#   bin/kube-apiserver kube-controller-manager kube-scheduler kubectl   (k8s.io/kubernetes)
#   bin/etcd           (etcdmain.Main through a wrapper module)
#   bin/kwok-patched   (kwok + kwok-v0.8.0-exec.patch: stdin EOF and exit codes for kubectl exec)
#   kwok/stages/*.yaml kwok/crds/*.yaml kwok/storage-class.yaml   (copied from the kwok module)
#   .stamp             (written last: present and current = complete build, reused as is)
# Progress and per-step timings go to stderr; logs of the build steps to <out>/logs/.
#
# Env: CSGHUB_CACHE [<repo>/.cache]  K8SENV_BUILD_JOBS [1] go builds run at once
#   (measured cold on 2 cores: 1 job 403 s, 2 jobs 519 s: concurrent go builds compile the shared
#   kubernetes packages twice, while one after the other reuse them from GOCACHE)
# Uses the normal GOMODCACHE/GOCACHE (shared with the main module's builds).
set -euo pipefail

K8S_VERSION=v1.33.13
STAGING_VERSION=v0.33.13 # k8s.io/<staging module> version matching K8S_VERSION
ETCD_VERSION=v3.5.21
KWOK_VERSION=v0.8.0
RECIPE=2 # bump when this script changes what it produces

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${CSGHUB_CACHE:-$REPO/.cache}
OUT=$CACHE/k8senv/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION
PATCH=$HERE/kwok-v0.8.0-exec.patch
JOBS=${K8SENV_BUILD_JOBS:-1}

log() { printf '%s build.sh: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ -f $PATCH ]] || die "missing $PATCH"
# the stamp records inputs that are not in the directory name, so a changed patch/recipe rebuilds
fingerprint="k8s=$K8S_VERSION etcd=$ETCD_VERSION kwok=$KWOK_VERSION recipe=$RECIPE patch=$(sha256sum <"$PATCH" | cut -c1-16)"
is_current() { [[ -f $OUT/.stamp && $(<"$OUT/.stamp") == "$fingerprint" ]]; }
if is_current; then
  echo "$OUT"
  exit 0
fi

if [[ -d /usr/local/go/bin ]]; then PATH=/usr/local/go/bin:$PATH; fi
command -v go >/dev/null || die "go not found on PATH"
command -v patch >/dev/null || die "patch not found (scripts/deps.sh installs it)"
command -v flock >/dev/null || die "flock not found (scripts/deps.sh installs util-linux)"
# -buildvcs=false: the throwaway modules live inside this repo's work tree
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0

mkdir -p "$OUT"
# one build at a time per output dir (parallel test packages may all call build.sh)
exec 9>"$OUT.lock"
if ! flock -n 9; then
  log "another build of $OUT is running; waiting for it"
  flock 9
fi
if is_current; then
  echo "$OUT"
  exit 0
fi
rm -f "$OUT/.stamp"
BIN=$OUT/bin SRC=$OUT/src LOGS=$OUT/logs
mkdir -p "$BIN" "$SRC" "$LOGS"
T_ALL=$(date +%s%N)

now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { printf '%d.%01d' $(($1 / 1000)) $(($1 % 1000 / 100)); }

# step <name> <dir> <command...>: run a preparation step in the foreground, timed and logged
step() {
  local name=$1 dir=$2 t0 rc=0
  shift 2
  t0=$(now_ms)
  (cd "$dir" && "$@") >"$LOGS/$name.log" 2>&1 || rc=$?
  if ((rc != 0)); then
    tail -n 30 "$LOGS/$name.log" >&2
    die "$name failed (exit $rc, log: $LOGS/$name.log)"
  fi
  log "$(printf '%-26s %6ss' "$name" "$(secs $(($(now_ms) - t0)))")"
}

# --- job pool for the go builds: each job is its own process group so a failure can stop the rest
declare -A JOB_NAME=() JOB_T0=()
kill_jobs() {
  local pid
  for pid in "${!JOB_NAME[@]}"; do kill -- -"$pid" 2>/dev/null || true; done
  for pid in "${!JOB_NAME[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap 'kill_jobs' EXIT

reap_one() {
  local pid rc=0 name
  wait -n -p pid "${!JOB_NAME[@]}" || rc=$?
  name=${JOB_NAME[$pid]}
  log "$(printf '%-26s %6ss' "$name" "$(secs $(($(now_ms) - JOB_T0[$pid])))")"
  unset "JOB_NAME[$pid]" "JOB_T0[$pid]"
  if ((rc != 0)); then
    tail -n 30 "$LOGS/$name.log" >&2
    die "$name failed (exit $rc, log: $LOGS/$name.log)"
  fi
}

# job <name> <dir> <command...>: start a build step once fewer than $JOBS are running
job() {
  local name=$1 dir=$2
  shift 2
  while ((${#JOB_NAME[@]} >= JOBS)); do reap_one; done
  setsid env -C "$dir" "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  JOB_NAME[$!]=$name
  JOB_T0[$!]=$(now_ms)
}

# --- kubernetes: k8s.io/kubernetes' go.mod replaces every staging module with ./staging/..., so
#     `go install k8s.io/kubernetes/cmd/...@v` is refused; a throwaway module pins them instead.
KSRC=$SRC/kubernetes
mkdir -p "$KSRC"
kmod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
[[ -f $kmod ]] || die "could not download k8s.io/kubernetes@$K8S_VERSION"
{
  echo "module local/k8senv-kubernetes"
  echo
  # same language version and GODEBUG defaults as upstream builds
  grep -E '^(go|godebug) ' "$kmod"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  awk -v v="$STAGING_VERSION" '$2 == "=>" && $3 ~ /^\.\/staging\// {print "\t" $1 " => " $1 " " v}' "$kmod"
  echo ")"
} >"$KSRC/go.mod.new"
# go.mod.base = what go.mod was generated from (go get then adds requires to go.mod itself)
if [[ -f $KSRC/go.mod ]] && cmp -s "$KSRC/go.mod.new" "$KSRC/go.mod.base"; then
  rm -f "$KSRC/go.mod.new"
else
  cp "$KSRC/go.mod.new" "$KSRC/go.mod.base"
  mv "$KSRC/go.mod.new" "$KSRC/go.mod"
  rm -f "$KSRC/go.sum"
fi
KCMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
# (explicit @version: a bare `go get <pkg>` means @upgrade, i.e. the newest kubernetes)
kpkgs=()
for c in "${KCMDS[@]}"; do kpkgs+=("k8s.io/kubernetes/cmd/$c@$K8S_VERSION"); done
step "resolve kubernetes" "$KSRC" go get "${kpkgs[@]}"

# --- etcd: its main modules carry replace directives too; a wrapper main calls etcdmain.Main
ESRC=$SRC/etcd
mkdir -p "$ESRC"
cat >"$ESRC/main.go" <<'EOF'
// Command etcd is etcd's server main, built from the module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
if [[ ! -f $ESRC/go.mod ]] || ! grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION" "$ESRC/go.mod"; then
  printf 'module local/k8senv-etcd\n\ngo 1.23.0\n' >"$ESRC/go.mod"
  rm -f "$ESRC/go.sum"
fi
step "resolve etcd" "$ESRC" sh -c "go get go.etcd.io/etcd/server/v3@$ETCD_VERSION && go mod tidy"

# --- kwok: patched copy of the module source, built in a Go workspace with this repository's module:
#     its Kubernetes client libraries are then the versions the plugin, its tests and the helms
#     use (one minor newer than kwok's own go.mod asks for), compiled once for all of them
#     instead of once more for kwok (~1.5 min of a cold machine's 2 cores)
kdir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d $kdir ]] || die "could not download sigs.k8s.io/kwok@$KWOK_VERSION"
rm -rf "$SRC/kwok"
cp -r "$kdir" "$SRC/kwok"
chmod -R u+w "$SRC/kwok"
step "patch kwok" "$SRC/kwok" patch -p1 --forward -i "$PATCH"
printf 'go %s\n\nuse (\n\t%s\n\t./kwok\n)\n' "$(awk '$1 == "go" {print $2; exit}' "$REPO/go.mod")" "$REPO" >"$SRC/go.work"
rm -f "$SRC/go.work.sum"
step "resolve kwok" "$SRC/kwok" env GOWORK="$SRC/go.work" go list -deps ./cmd/kwok

# stage files (kwok exits "no stages found" without them), CRDs and the fake StorageClass
rm -rf "$OUT/kwok"
mkdir -p "$OUT/kwok/stages" "$OUT/kwok/crds"
st=$kdir/kustomize/stage
cp "$st/node/fast/node-initialize.yaml" "$st/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
  "$st/pod/fast/pod-ready.yaml" "$st/pod/fast/pod-complete.yaml" "$st/pod/fast/pod-delete.yaml" \
  "$st/volume/fast/pvc-provision.yaml" "$st/volume/fast/pv-bind.yaml" "$st/volume/fast/pvc-delete.yaml" \
  "$st/volume/fast/pv-delete.yaml" "$OUT/kwok/stages/"
cp "$st/volume/fast/storage-class.yaml" "$OUT/kwok/storage-class.yaml"
cp "$kdir"/kustomize/crd/bases/*.yaml "$OUT/kwok/crds/"
chmod -R u+w "$OUT/kwok"

# --- go builds; kube-apiserver first: the other kubernetes commands mostly reuse its packages
vp=k8s.io/component-base/version cp_=k8s.io/client-go/pkg/version
minor=$(cut -d. -f2 <<<"$K8S_VERSION")
kldflags="-s -w"
for p in $vp $cp_; do
  kldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  kldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
log "building with $JOBS job(s) at once"
for c in kube-apiserver kube-controller-manager kubectl kube-scheduler; do
  job "$c" "$KSRC" go build -trimpath -ldflags "$kldflags" -o "$BIN/$c" "k8s.io/kubernetes/cmd/$c"
done
job kwok-patched "$SRC/kwok" env GOWORK="$SRC/go.work" go build -trimpath -ldflags "-s -w" -o "$BIN/kwok-patched" ./cmd/kwok
job etcd "$ESRC" go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" .
while ((${#JOB_NAME[@]} > 0)); do reap_one; done
trap - EXIT

rm -rf "$SRC/kwok" # 20 MB of copied source; recreated on the next build
"$BIN/kube-apiserver" --version >/dev/null || die "built kube-apiserver does not run"
printf '%s\n' "$fingerprint" >"$OUT/.stamp"
log "$(printf '%-26s %6ss' "total" "$(secs $((($(date +%s%N) - T_ALL) / 1000000)))")"
echo "$OUT"
