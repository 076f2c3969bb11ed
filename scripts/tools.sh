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
#
# Both helms are `tool` dependencies of this repository's go.mod, which pins their versions and
# builds them with the project's own dependency versions: Helm's libraries, client-go and the rest
# are then compiled once for the helms, the plugin and its tests (a cold machine saved ~5 min of
# its 2 cores; with helm's own go.mod every package was compiled again for a slightly different
# golang.org/x/sys or client-go). The helm v3 CLI is thus the same Helm release as the library the
# plugin links.
set -euo pipefail

RECIPE=2 # bump when this script changes how it builds (the stamp records it)

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

# mod_version <module>: the version this repository's go.mod selects
mod_version() {
  (cd "$REPO" && go list -m -f '{{.Version}}' "$1") || die "cannot read the version of $1 from go.mod"
}

# build_helm <major>: build helm v<major> (the version go.mod pins) into
# $CACHE/tools/helm-<version>/ unless stamped; prints nothing
build_helm() {
  local major=$1 version dir mod ldflags kv t0
  go_env
  mod=helm.sh/helm/v$major
  version=$(mod_version "$mod")
  dir=$CACHE/tools/helm-$version
  stamp="$version recipe=$RECIPE"
  if [[ -f $dir/.stamp && -x $dir/helm && $(<"$dir/.stamp") == "$stamp" ]]; then return 0; fi
  mkdir -p "$dir"
  exec 8>"$dir.lock" # parallel test packages may ask at the same time
  flock 8
  if [[ -f $dir/.stamp && -x $dir/helm && $(<"$dir/.stamp") == "$stamp" ]]; then exec 8>&-; return 0; fi
  t0=$SECONDS
  # the same version stamping as helm's Makefile: without it `helm version` says v3.22 / v4.3
  ldflags="-s -w -X $mod/internal/version.version=$version -X $mod/internal/version.gitTreeState=clean"
  if [[ $major == 3 ]]; then
    # helm 3 bakes the default .Capabilities.KubeVersion in at link time (client-go v0.X.Y -> 1.X);
    # helm 4 reads it from the binary's build info instead
    kv=$(mod_version k8s.io/client-go)
    [[ $kv =~ ^v0\.([0-9]+)\. ]] || die "cannot read the k8s.io/client-go version from go.mod"
    for p in pkg/lint/rules pkg/chartutil; do
      ldflags+=" -X $mod/$p.k8sVersionMajor=1 -X $mod/$p.k8sVersionMinor=${BASH_REMATCH[1]}"
    done
  fi
  log "building helm $version"
  rm -f "$dir/.stamp" "$dir/helm"
  (cd "$REPO" && go build -trimpath -ldflags "$ldflags" -o "$dir/helm" "$mod/cmd/helm") ||
    die "building helm $version failed"
  local got
  got=$(HELM_CACHE_HOME=$dir/home HELM_CONFIG_HOME=$dir/home HELM_DATA_HOME=$dir/home \
    "$dir/helm" version --template '{{.Version}}') || die "built helm $version does not run"
  rm -rf "${dir:?}/home"
  [[ $got == "$version" ]] || die "built helm reports version $got, want $version"
  echo "$stamp" >"$dir/.stamp"
  exec 8>&-
  log "helm $version built in $((SECONDS - t0))s"
}

# helm_path <major>: the binary build_helm makes
helm_path() {
  go_env
  echo "$CACHE/tools/helm-$(mod_version "helm.sh/helm/v$1")/helm"
}

tool_path() {
  case "$1" in
    helm3) build_helm 3; helm_path 3 ;;
    helm4) build_helm 4; helm_path 4 ;;
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
    build_helm 3
    build_helm 4
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
