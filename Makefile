# The two set-up commands of the README: `make render` (the main job) and `make test`.
# Both install what they need on a fresh machine: a pinned uv and the locked Python
# dependencies into .venv, and (for the tests) the Go tools built from pinned modules into
# .tools/bin: the real Crossplane CLI and core, etcd, kube-apiserver,
# kube-controller-manager and kubectl. uv and the built tools are cached under
# ~/.cache/cozyplane, so fresh clones and re-runs reuse them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

PYTHON ?= python3.11
UV_VERSION := 0.13.8
CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/cozyplane
UV := $(CACHE)/uv-$(UV_VERSION)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
OUT := out
TOOLS := .tools/bin
GO_TOOLS := crank crossplane helm etcd kube-apiserver kube-controller-manager kubectl

.PHONY: render test lint tools generate packages controlplane bench clean

$(UV):
	$(PYTHON) -m venv $(CACHE)/uv-$(UV_VERSION)
	$(CACHE)/uv-$(UV_VERSION)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock functions/_wire.c $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

## tools: build (or reuse) the pinned Go tools, each from its module in tools/
tools:
	for tool in $(GO_TOOLS); do tools/build.sh $$tool; done

## render: render every example claim through function-cozyplane into out/
render: $(VENV)/.synced
	COZYPLANE=$(BIN)/cozyplane examples/render-all.sh $(OUT)

## lint: formatting, lint rules and strict typing
lint: $(VENV)/.synced
	$(BIN)/ruff format --check functions tests benchmarks
	$(BIN)/ruff check functions tests benchmarks
	$(BIN)/mypy functions tests benchmarks

## test: the whole suite, lint and the real Crossplane CLI included (what CI runs)
test: lint tools
	COZYPLANE_TOOLS=$(CURDIR)/$(TOOLS) $(BIN)/pytest

## generate: rewrite the XRDs, Compositions, input CRD, ClusterRoles and docs/api.md
generate: $(VENV)/.synced
	$(BIN)/cozyplane generate

## packages: build the Configuration and Function packages and the chart into out/packages
packages:
	tools/build.sh crank
	tools/build.sh helm
	package/build.sh $(TOOLS)/crank $(TOOLS)/helm $(OUT)/packages

## bench: the full benchmark against the no-op floor: out/bench/results.json and scaling.png
bench: $(VENV)/.synced
	$(BIN)/python -m benchmarks --out $(OUT)/bench

## controlplane: start the e2e's control plane (etcd, kube-apiserver, Crossplane, the function)
controlplane: $(VENV)/.synced tools
	COZYPLANE_TOOLS=$(CURDIR)/$(TOOLS) $(BIN)/python -m tests.e2e.controlplane

clean:
	rm -rf $(VENV) $(OUT) .tools
