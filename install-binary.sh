#!/usr/bin/env bash
# install-binary.sh - puts bin/helm-csghub into the plugin directory. Run by Helm
# as the plugin's install/update hook, or by hand.
#
# 1. HELM_CSGHUB_SKIP_INSTALL=1: do nothing (development: `make build` made bin/).
# 2. Go on PATH and the source here: build from source. Dependencies come from the
#    Go module cache / GOPROXY, never from a release download.
# 3. Otherwise: download the release archive for this OS/arch and verify its
#    sha256 against the release's checksums file before installing it.
set -euo pipefail

PROJECT=helm-csghub
REPO_URL=${HELM_CSGHUB_RELEASES_URL:-https://github.com/opencsgs/helm-csghub/releases/download}
DIR=${HELM_PLUGIN_DIR:-$(cd "$(dirname "$0")" && pwd)}
cd "$DIR"

die() { printf 'install-binary.sh: %s\n' "$*" >&2; exit 1; }

if [[ ${HELM_CSGHUB_SKIP_INSTALL:-} == 1 ]]; then
  echo "install-binary.sh: HELM_CSGHUB_SKIP_INSTALL=1, not building"
  exit 0
fi

version=$(sed -n 's/^version:[[:space:]]*"\{0,1\}\([^"]*\)"\{0,1\}[[:space:]]*$/\1/p' plugin.yaml | head -n1)
[[ -n $version ]] || die "cannot read version from $DIR/plugin.yaml"

GO=$(command -v go || true)
if [[ -z $GO && -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; fi

if [[ -n $GO && -f go.mod && -f main.go ]]; then
  commit=$(git -C "$DIR" rev-parse --short=12 HEAD 2>/dev/null || true)
  pkg=github.com/opencsgs/helm-csghub/internal/buildinfo
  mkdir -p bin
  echo "install-binary.sh: building $PROJECT $version from source with $("$GO" env GOVERSION)"
  # -buildvcs=false: the plugin dir may be a copy without .git; the commit is passed explicitly.
  GOFLAGS="${GOFLAGS:-} -buildvcs=false" CGO_ENABLED=0 "$GO" build -trimpath \
    -ldflags "-s -w -X $pkg.Version=$version -X $pkg.Commit=$commit" \
    -o "bin/$PROJECT.tmp" . || die "go build failed"
  mv -f "bin/$PROJECT.tmp" "bin/$PROJECT"
  echo "install-binary.sh: installed $DIR/bin/$PROJECT"
  exit 0
fi

# --- no Go: release download with checksum
os=$(uname -s | tr '[:upper:]' '[:lower:]')
case $(uname -m) in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "unsupported architecture $(uname -m); build from source with Go" ;;
esac
archive="${PROJECT}_${version}_${os}_${arch}.tar.gz"
fetch() {
  if command -v curl >/dev/null; then curl -fsSL --retry 3 -o "$2" "$1"
  elif command -v wget >/dev/null; then wget -q -O "$2" "$1"
  else die "neither Go nor curl/wget found: install Go (to build from source) or curl"
  fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "install-binary.sh: Go not found, downloading $archive"
fetch "$REPO_URL/v$version/$archive" "$tmp/$archive" || die "download of $archive failed (offline? install Go to build from source)"
fetch "$REPO_URL/v$version/checksums.txt" "$tmp/checksums.txt" || die "download of checksums.txt failed"
want=$(awk -v f="$archive" '$2 == f || $2 == "*" f {print $1}' "$tmp/checksums.txt")
[[ -n $want ]] || die "$archive is not listed in checksums.txt"
if command -v sha256sum >/dev/null; then got=$(sha256sum "$tmp/$archive" | awk '{print $1}')
else got=$(shasum -a 256 "$tmp/$archive" | awk '{print $1}'); fi
[[ $got == "$want" ]] || die "checksum mismatch for $archive: got $got, want $want"
tar -xzf "$tmp/$archive" -C "$tmp"
mkdir -p bin
install -m 0755 "$tmp/$PROJECT" "bin/$PROJECT.tmp"
mv -f "bin/$PROJECT.tmp" "bin/$PROJECT"
echo "install-binary.sh: installed $DIR/bin/$PROJECT $version"
