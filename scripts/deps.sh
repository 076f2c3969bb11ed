#!/usr/bin/env bash
# deps.sh - install the system packages the build and tests need on Debian 12 (bookworm).
# Idempotent: checks with dpkg first; runs `apt-get update` once and installs only when something
# is missing. kubectl, helm, etcd and kwok are NOT installed here: they are built from source
# (scripts/k8senv/build.sh, scripts/tools.sh). Go (see go.mod) must already be installed.
set -euo pipefail

PACKAGES=(postgresql-15 openssl curl ca-certificates procps util-linux patch git make zstd redis-server)

log() { printf '%s deps.sh: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

command -v dpkg-query >/dev/null || die "not a Debian system (dpkg-query missing): install ${PACKAGES[*]} by hand"
missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done

if ((${#missing[@]} > 0)); then
  [[ $EUID == 0 ]] || die "missing packages: ${missing[*]} (run as root to install them)"
  log "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for p in "${missing[@]}"; do
    installed "$p" || die "$p still not installed after apt-get install"
  done
  log "installed ${#missing[@]} package(s)"
fi

if [[ -d /usr/local/go/bin ]]; then PATH=/usr/local/go/bin:$PATH; fi
if ! command -v go >/dev/null; then
  log "WARNING: go is not on PATH (needed to build the cluster binaries, helm and the plugin)"
fi
