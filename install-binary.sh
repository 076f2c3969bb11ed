#!/usr/bin/env bash
# install-binary.sh - puts bin/helm-csghub into the plugin directory. Run by Helm
# as the plugin's install/update hook, or by hand. It fails closed: when it
# cannot tell that the binary is the right one it stops with one line and
# leaves bin/ as it was.
#
# 1. HELM_CSGHUB_SKIP_INSTALL=1: do nothing (development: `make build` made bin/).
# 2. Go on PATH and the source here (a clone): build from source. Dependencies
#    come from the Go module cache / GOPROXY, never from a release download.
# 3. A release archive's folder (the binary beside plugin.yaml): install that
#    binary once it runs and reports plugin.yaml's version.
# 4. Otherwise (the Helm 4 plugin package, or a clone without Go): download the
#    release archive for this OS/arch and check its sha256 before installing it,
#    against the checksums.txt in this folder when there is one (the signed Helm
#    4 package carries it, so its signature covers the binary too), else against
#    the release's checksums.txt.
set -euo pipefail

PROJECT=helm-csghub
REPO_URL=${HELM_CSGHUB_RELEASES_URL:-https://github.com/opencsgs/helm-csghub/releases/download}
DIR=${HELM_PLUGIN_DIR:-$(cd "$(dirname "$0")" && pwd)}
cd "$DIR"

die() {
  printf 'install-binary.sh: %s\n' "$*" >&2
  exit 1
}

if [[ ${HELM_CSGHUB_SKIP_INSTALL:-} == 1 ]]; then
  echo "install-binary.sh: HELM_CSGHUB_SKIP_INSTALL=1, not building"
  exit 0
fi

version=$(sed -n 's/^version:[[:space:]]*"\{0,1\}\([^"]*\)"\{0,1\}[[:space:]]*$/\1/p' plugin.yaml | head -n1)
[[ -n $version ]] || die "cannot read version from $DIR/plugin.yaml"

case $(uname -s) in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  MINGW* | MSYS* | CYGWIN*) os=windows ;;
  *) die "unsupported OS $(uname -s); build from source with Go" ;;
esac
case $(uname -m) in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "unsupported architecture $(uname -m); build from source with Go" ;;
esac
# plugin.yaml runs the archive's helm-csghub.exe in place on Windows
[[ $os != windows ]] || die "on Windows, install the plugin from the release archive's folder (README: Install)"

# put <file> into bin/ under a temporary name first: bin/ never holds half a binary
install_bin() {
  mkdir -p bin
  cp "$1" "bin/$PROJECT.tmp" && chmod 0755 "bin/$PROJECT.tmp" && mv -f "bin/$PROJECT.tmp" "bin/$PROJECT" ||
    { rm -f "bin/$PROJECT.tmp"; die "cannot write $DIR/bin/$PROJECT"; }
}

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
    -o "bin/$PROJECT.tmp" . || { rm -f "bin/$PROJECT.tmp"; die "go build failed"; }
  mv -f "bin/$PROJECT.tmp" "bin/$PROJECT"
  echo "install-binary.sh: installed $DIR/bin/$PROJECT"
  exit 0
fi

# the version a binary reports ("" when it does not run here)
binary_version() { "$1" version 2>/dev/null | awk '$1 == "plugin:" {print $2}' || true; }

# check_binary <path> <name>: what we install is a regular file (not a link to
# something else), runs here and reports plugin.yaml's version
check_binary() {
  [[ -f $1 && ! -L $1 ]] || die "$2 is not a regular file (a link?), nothing installed"
  got=$(binary_version "$1")
  [[ -n $got ]] || die "$2 does not run on $os/$arch (an archive for another platform?), nothing installed"
  [[ $got == "$version" ]] || die "$2 is version $got, plugin.yaml says $version, nothing installed"
}

if [[ -e $PROJECT || -L $PROJECT ]]; then
  check_binary "./$PROJECT" "$DIR/$PROJECT"
  install_bin "$PROJECT"
  echo "install-binary.sh: installed $DIR/bin/$PROJECT $version from the release archive"
  exit 0
fi

# --- download with checksum
archive="${PROJECT}_${version}_${os}_${arch}.tar.gz"
fetch() {
  # curl without -S: a failure is reported by the caller's one line
  if command -v curl >/dev/null; then curl -fsL --retry 2 -o "$2" "$1"
  elif command -v wget >/dev/null; then wget -q -O "$2" "$1"
  else die "neither Go nor curl/wget found: install Go (to build from source) or curl"
  fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "install-binary.sh: downloading $archive from $REPO_URL/v$version"
fetch "$REPO_URL/v$version/$archive" "$tmp/$archive" ||
  die "download of $REPO_URL/v$version/$archive failed, nothing installed (offline? no release for $os/$arch? install Go to build from source)"
if [[ -f checksums.txt ]]; then
  sums=checksums.txt
  where="the plugin's checksums.txt"
else
  where="the release's checksums.txt"
  fetch "$REPO_URL/v$version/checksums.txt" "$tmp/checksums.txt" ||
    die "download of $REPO_URL/v$version/checksums.txt failed, nothing installed"
  sums=$tmp/checksums.txt
fi
want=$(awk -v f="$archive" '$2 == f || $2 == "*" f {print $1}' "$sums")
[[ $want =~ ^[0-9a-f]{64}$ ]] || die "$archive is not listed in $where, nothing installed"
if command -v sha256sum >/dev/null; then
  got=$(sha256sum "$tmp/$archive" | awk '{print $1}')
elif command -v shasum >/dev/null; then
  got=$(shasum -a 256 "$tmp/$archive" | awk '{print $1}')
else
  die "neither sha256sum nor shasum found: cannot check $archive, nothing installed"
fi
[[ $got == "$want" ]] || die "checksum mismatch for $archive (got $got, $where says $want), nothing installed"
mkdir "$tmp/x"
tar -xzf "$tmp/$archive" -C "$tmp/x" "$PROJECT" 2>/dev/null || die "$archive holds no $PROJECT, nothing installed"
# the checksum proves the archive is the one listed, not that what it holds is
# this version's binary: the same checks as an archive's folder
check_binary "$tmp/x/$PROJECT" "$PROJECT in $archive"
install_bin "$tmp/x/$PROJECT"
echo "install-binary.sh: installed $DIR/bin/$PROJECT $version"
