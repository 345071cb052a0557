#!/usr/bin/env bash
# The main job: render every example claim through function-cozyplane into a folder.
# Claims with observed state in examples/observed/<name>/ are rendered a second time
# against it (<name>.day2.yaml). GitOps claims get their tenant's namespace.
set -euo pipefail
cozyplane=${COZYPLANE:-.venv/bin/cozyplane}
out=${1:-out}
mkdir -p "$out"

render() {
  local claim=$1 target=$2
  shift 2
  "$cozyplane" render "$claim" --required examples/environment --include-xr "$@" >"$target"
  echo "$claim -> $target ($(grep -c '^---' "$target") objects, the composite first)"
}

for claim in examples/*.yaml; do
  name=$(basename "$claim" .yaml)
  render "$claim" "$out/$name.yaml"
  if [[ -d examples/observed/$name ]]; then
    render "$claim" "$out/$name.day2.yaml" --observed "examples/observed/$name"
  fi
done
for dir in examples/gitops/tenants/*/; do
  tenant=$(basename "$dir")
  for claim in "$dir"*.yaml; do
    render "$claim" "$out/gitops-$tenant-$(basename "$claim")" -n "tenant-$tenant"
  done
done
