#!/usr/bin/env bash
# Build the Crossplane packages with crank: the Configuration (XRDs + Compositions,
# depending on function-cozyplane) and the Function package metadata (no runtime image:
# that needs a Docker engine, see docs/release.md); and, with helm, the chart cozyplane
# installs into tenant Kubernetes clusters.
# Usage: package/build.sh CRANK HELM OUT_DIR
set -euo pipefail
crank=$(realpath "$1")
helm=$(realpath "$2")
out=$(realpath -m "$3")
root=$(cd "$(dirname "$0")/.." && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

mkdir -p "$out" "$stage/configuration" "$stage/no-examples"
cp "$root/package/configuration/crossplane.yaml" "$stage/configuration/"
cp -r "$root/xrds" "$root/compositions" "$stage/configuration/"

"$crank" xpkg build --package-root "$stage/configuration" \
  --examples-root "$root/examples" --package-file "$out/configuration-cozyplane.xpkg"
"$crank" xpkg build --package-root "$root/package/function" \
  --examples-root "$stage/no-examples" --package-file "$out/function-cozyplane.xpkg"
"$helm" package "$root/package/charts/cozyplane-tenant-bootstrap" --destination "$out" >/dev/null
echo "built $out/configuration-cozyplane.xpkg, $out/function-cozyplane.xpkg and the chart in $out"
