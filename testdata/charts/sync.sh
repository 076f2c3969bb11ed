#!/usr/bin/env bash
# Keep the shared parts of the test charts identical (each chart folder must stay complete for
# `helm package`, so they are copies, not symlinks):
#   csghub-*/templates/, csghub-*/.helmignore                    identical in every version
#   csghub-*/charts/gateway-helm/{templates,values.yaml,.helmignore}  identical where present (>=1.16)
#   csghub-*/charts/loki/ (with its crds/), csghub-*/charts/runner/{values.yaml,.helmignore,
#     charts/gateway-helm/{values.yaml,.helmignore}}                 identical where present (>=1.16)
# Per-version files (Chart.yaml, values.yaml, charts/*/Chart.yaml, gateway-helm crds/) are not touched.
# The crds/ folders are written by `go run ./scripts/gencrds` (its --check compares them).
#
# Usage: testdata/charts/sync.sh [--check] [--from <chart folder name>]   (default --from csghub-2.0.1)
#   --check  only compare; exit 1 and list the differences if any copy drifted
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
from=csghub-2.0.1
check=0
while (($#)); do
  case $1 in
    --check) check=1 ;;
    --from) from=${2:?--from needs a folder name}; shift ;;
    -h | --help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "sync.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
src=$root/$from
[[ -d $src/templates ]] || { echo "sync.sh: $src is not a chart folder" >&2; exit 2; }

drift=0
# sync_path <relative path>: copy (or compare) $src/<path> into every chart folder that should have it
sync_path() {
  local rel=$1 dst
  for dst in "$root"/csghub-*/; do
    dst=${dst%/}
    [[ $dst == "$src" ]] && continue
    # the subcharts exist only from 1.16.0
    if [[ $rel == charts/* ]]; then
      local sub=${rel#charts/}
      [[ -d $dst/charts/${sub%%/*} ]] || continue
    fi
    if ((check)); then
      diff -r "$src/$rel" "$dst/$rel" >/dev/null 2>&1 || { echo "drift: ${dst##*/}/$rel"; drift=1; }
    else
      rm -rf "${dst:?}/$rel"
      cp -R "$src/$rel" "$dst/$rel"
    fi
  done
}

sync_path templates
sync_path .helmignore
if [[ -d $src/charts/gateway-helm ]]; then
  sync_path charts/gateway-helm/templates
  sync_path charts/gateway-helm/values.yaml
  sync_path charts/gateway-helm/.helmignore
fi
if [[ -d $src/charts/loki ]]; then
  sync_path charts/loki
  sync_path charts/runner/values.yaml
  sync_path charts/runner/.helmignore
  sync_path charts/runner/charts/gateway-helm/values.yaml
  sync_path charts/runner/charts/gateway-helm/.helmignore
fi
exit "$drift"
