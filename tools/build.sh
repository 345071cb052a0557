#!/usr/bin/env bash
# Build one pinned Go tool from the module in tools/<module>/ and link it into .tools/bin.
# Binaries are cached under ~/.cache/cozyplane/go-tools keyed by the module's go.mod,
# go.sum and build flags, so fresh clones and re-runs reuse them; Go's own module and
# build caches make a rebuild after a pin change incremental.
# Usage: tools/build.sh crank|crossplane|helm|etcd|kube-apiserver|kube-controller-manager|kubectl
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
name=$1

pinned() { awk -v m="$2" '$1 == m {print $2}' "$root/tools/$1/go.mod"; }

case $name in
  crank | crossplane)
    module=crossplane
    package=github.com/crossplane/crossplane/v2/cmd/$name
    version=$(pinned crossplane github.com/crossplane/crossplane/v2)
    ldflags="-X github.com/crossplane/crossplane/v2/internal/version.version=$version"
    ;;
  helm)
    module=helm
    package=helm.sh/helm/v3/cmd/helm
    version=$(pinned helm helm.sh/helm/v3)
    ldflags="-X helm.sh/helm/v3/internal/version.version=$version"
    ;;
  etcd)
    module=etcd
    package=go.etcd.io/etcd/server/v3
    ldflags=""
    ;;
  kube-apiserver | kube-controller-manager | kubectl)
    module=kubernetes
    package=k8s.io/kubernetes/cmd/$name
    version=$(pinned kubernetes k8s.io/kubernetes)
    minor=$(cut -d. -f2 <<<"$version")
    ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$version"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
    ;;
  *)
    echo "unknown tool: $name" >&2
    exit 2
    ;;
esac

dir=$root/tools/$module
key=$(cat "$dir/go.mod" "$dir/go.sum" <(echo "$package $ldflags $(go env GOVERSION)") | sha256sum | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/cozyplane/go-tools/$name-$key
if [[ ! -x $cache ]]; then
  echo "building $name ($package) ..." >&2
  mkdir -p "$(dirname "$cache")"
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -pgo=off -ldflags "$ldflags" -o "$cache.tmp" "$package")
  mv "$cache.tmp" "$cache"
fi
mkdir -p "$root/.tools/bin"
ln -sfn "$cache" "$root/.tools/bin/$name"
