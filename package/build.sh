#!/usr/bin/env bash
# Build the Crossplane packages with crank: the Configuration (XRDs + Compositions,
# depending on function-cozyplane) and the Function package metadata (no runtime image:
# that needs a Docker engine, see docs/release.md).
# Usage: package/build.sh CRANK OUT_DIR
set -euo pipefail
crank=$(realpath "$1")
out=$(realpath -m "$2")
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
echo "built $out/configuration-cozyplane.xpkg and $out/function-cozyplane.xpkg"
