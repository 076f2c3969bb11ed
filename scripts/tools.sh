#!/usr/bin/env bash
# tools.sh - client CLIs the tests drive, built from the Go module proxy, pinned and cached.
#
# Usage:
#   scripts/tools.sh [build]           build helm v3 and helm v4 (no-op when cached)
#   scripts/tools.sh path helm3        print the helm v3 binary path (building it if needed)
#   scripts/tools.sh path helm4        print the helm v4 binary path (building it if needed)
#   scripts/tools.sh path kubectl      print kubectl's path (built by scripts/k8senv/build.sh)
# Output: $CSGHUB_CACHE/tools/helm-<version>/helm  (CSGHUB_CACHE defaults to <repo>/.cache)
# Only the path goes to stdout; progress goes to stderr.
set -euo pipefail

HELM3_VERSION=v3.22.0
HELM4_VERSION=v4.3.1

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CACHE=${CSGHUB_CACHE:-$REPO/.cache}

log() { printf '%s tools.sh: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

go_env() {
  if [[ -d /usr/local/go/bin ]]; then PATH=/usr/local/go/bin:$PATH; fi
  command -v go >/dev/null || die "go not found on PATH"
  export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
}

# build_helm <major> <version>: go install helm into $CACHE/tools/helm-<version>/ unless stamped
build_helm() {
  local major=$1 version=$2 dir mod ldflags kv t0
  dir=$CACHE/tools/helm-$version
  if [[ -f $dir/.stamp && -x $dir/helm ]]; then return 0; fi
  mkdir -p "$dir"
  exec 8>"$dir.lock" # parallel test packages may ask at the same time
  flock 8
  if [[ -f $dir/.stamp && -x $dir/helm ]]; then exec 8>&-; return 0; fi
  go_env
  t0=$SECONDS
  mod=helm.sh/helm/v$major
  # the same version stamping as helm's Makefile: without it `helm version` says v3.22 / v4.3
  ldflags="-s -w -X $mod/internal/version.version=$version -X $mod/internal/version.gitTreeState=clean"
  if [[ $major == 3 ]]; then
    # helm 3 bakes the default .Capabilities.KubeVersion in at link time (client-go v0.X.Y -> 1.X);
    # helm 4 reads it from the binary's build info instead
    local gomod
    gomod=$(cd / && go mod download -json "$mod@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
    kv=$(awk '$1 == "k8s.io/client-go" {print $2}' "$gomod")
    [[ $kv =~ ^v0\.([0-9]+)\. ]] || die "cannot read the k8s.io/client-go version of $mod@$version"
    for p in pkg/lint/rules pkg/chartutil; do
      ldflags+=" -X $mod/$p.k8sVersionMajor=1 -X $mod/$p.k8sVersionMinor=${BASH_REMATCH[1]}"
    done
  fi
  log "building helm $version"
  rm -f "$dir/.stamp" "$dir/helm"
  # helm has no replace directives, so a plain `go install pkg@version` works (run outside any module)
  (cd / && GOBIN=$dir go install -trimpath -ldflags "$ldflags" "$mod/cmd/helm@$version") ||
    die "building helm $version failed"
  local got
  got=$(HELM_CACHE_HOME=$dir/home HELM_CONFIG_HOME=$dir/home HELM_DATA_HOME=$dir/home \
    "$dir/helm" version --template '{{.Version}}') || die "built helm $version does not run"
  rm -rf "${dir:?}/home"
  [[ $got == "$version" ]] || die "built helm reports version $got, want $version"
  echo "$version" >"$dir/.stamp"
  exec 8>&-
  log "helm $version built in $((SECONDS - t0))s"
}

tool_path() {
  case "$1" in
    helm3) build_helm 3 "$HELM3_VERSION"; echo "$CACHE/tools/helm-$HELM3_VERSION/helm" ;;
    helm4) build_helm 4 "$HELM4_VERSION"; echo "$CACHE/tools/helm-$HELM4_VERSION/helm" ;;
    kubectl)
      local out
      out=$(CSGHUB_CACHE=$CACHE "$REPO/scripts/k8senv/build.sh")
      echo "$out/bin/kubectl"
      ;;
    *) die "unknown tool '$1' (helm3, helm4 or kubectl)" ;;
  esac
}

case "${1:-build}" in
  build)
    build_helm 3 "$HELM3_VERSION"
    build_helm 4 "$HELM4_VERSION"
    ;;
  path)
    [[ $# == 2 ]] || die "usage: $0 path helm3|helm4|kubectl"
    tool_path "$2"
    ;;
  *)
    echo "usage: $0 [build] | path helm3|helm4|kubectl" >&2
    exit 2
    ;;
esac
