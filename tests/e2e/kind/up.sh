#!/usr/bin/env bash
# For users with Docker: the e2e's setup on a kind cluster, with Crossplane from its Helm
# chart and cozyplane installed as packages from a local registry. Not exercised by this
# project's CI (its machines have no Docker engine); see docs/e2e.md.
#
# Needs: docker, kind, helm, kubectl, crossplane (the CLI), and the operators' CRDs in
# CRDS_DIR (default ../shared/crds). Usage: tests/e2e/kind/up.sh [cluster-name]
set -euo pipefail
cluster=${1:-cozyplane}
root=$(cd "$(dirname "$0")/../../.." && pwd)
crds=${CRDS_DIR:-$root/../shared/crds}
registry=cozyplane-registry
port=5001
version=v0.0.0-dev
crossplane_chart_version=${CROSSPLANE_CHART_VERSION:-2.2.1}

# A registry the cluster pulls from (kind's documented local-registry recipe).
if ! docker inspect "$registry" >/dev/null 2>&1; then
  docker run -d --restart=always -p "127.0.0.1:$port:5000" --name "$registry" registry:2
fi
kind create cluster --name "$cluster" --config - <<KIND
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
- |-
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."localhost:$port"]
    endpoint = ["http://$registry:5000"]
KIND
docker network connect kind "$registry" 2>/dev/null || true

helm repo add crossplane-stable https://charts.crossplane.io/stable
helm upgrade --install crossplane crossplane-stable/crossplane --version "$crossplane_chart_version" \
  --namespace crossplane-system --create-namespace --wait

# The function's runtime image and both packages, pushed to the local registry.
out=$(mktemp -d)
docker build -f "$root/package/Dockerfile" -t "localhost:$port/function-cozyplane:$version" "$root"
crossplane xpkg build --package-root "$root/package/function" --examples-root "$out/none" \
  --embed-runtime-image "localhost:$port/function-cozyplane:$version" --package-file "$out/function.xpkg"
crossplane xpkg push -f "$out/function.xpkg" "localhost:$port/function-cozyplane:$version"
"$root/package/build.sh" "$(command -v crossplane)" "$out"
crossplane xpkg push -f "$out/configuration-cozyplane.xpkg" "localhost:$port/configuration-cozyplane:$version"

# Operators' CRDs, cozyplane's RBAC and packages, then the e2e's claims.
find "$crds" -name '*.yaml' ! -name '*.openAPIV3Schema.yaml' -print0 |
  xargs -0 -n1 kubectl apply --server-side -f
kubectl apply -f "$root/package/rbac/"
kubectl apply -f - <<PKG
apiVersion: pkg.crossplane.io/v1
kind: Function
metadata:
  name: function-cozyplane
spec:
  package: localhost:$port/function-cozyplane:$version
---
apiVersion: pkg.crossplane.io/v1
kind: Configuration
metadata:
  name: configuration-cozyplane
spec:
  package: localhost:$port/configuration-cozyplane:$version
  skipDependencyResolution: true
PKG
kubectl wait --for=condition=Healthy function/function-cozyplane configuration/configuration-cozyplane --timeout=5m
kubectl wait --for=condition=Offered xrd --all --timeout=5m
kubectl apply -f "$root/examples/environment/tenant-root.yaml"
kubectl apply -f "$root/examples/tenant-root.yaml" -f "$root/examples/tenant-nested.yaml"
kubectl wait --for=condition=Ready tenant/dev -n tenant-root --timeout=5m
kubectl apply -f "$root/examples/postgres-full.yaml"
echo "cluster $cluster is up: kubectl get tenants,postgreses -A"
