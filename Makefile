# The two set-up commands of the README: `make render` (the main job) and `make test`.
# Both install what they need on a fresh machine: a pinned uv and the locked Python
# dependencies into .venv, and (for the tests) the real Crossplane CLI built from Go
# modules into .tools/bin. uv is cached under ~/.cache/cozyplane; Go's module and build
# caches make a rebuild of crank in a fresh clone a link step.
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
CRANK := $(TOOLS)/crank
# The Crossplane version is pinned once, in tools/crank/go.mod.
CROSSPLANE_VERSION := $(shell awk '$$1 == "github.com/crossplane/crossplane/v2" {print $$2}' tools/crank/go.mod)

.PHONY: render test lint generate packages clean

$(UV):
	$(PYTHON) -m venv $(CACHE)/uv-$(UV_VERSION)
	$(CACHE)/uv-$(UV_VERSION)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

$(CRANK): tools/crank/go.mod tools/crank/go.sum
	cd tools/crank && go build -trimpath \
	  -ldflags "-X github.com/crossplane/crossplane/v2/internal/version.version=$(CROSSPLANE_VERSION)" \
	  -o $(CURDIR)/$(CRANK) github.com/crossplane/crossplane/v2/cmd/crank

## render: render every example claim through function-cozyplane into out/
render: $(VENV)/.synced
	COZYPLANE=$(BIN)/cozyplane examples/render-all.sh $(OUT)

## lint: formatting, lint rules and strict typing
lint: $(VENV)/.synced
	$(BIN)/ruff format --check functions tests
	$(BIN)/ruff check functions tests
	$(BIN)/mypy functions tests

## test: the whole suite, lint and the real Crossplane CLI included (what CI runs)
test: lint $(CRANK)
	COZYPLANE_CRANK=$(CURDIR)/$(CRANK) $(BIN)/pytest

## generate: rewrite the XRDs, Compositions, input CRD, ClusterRoles and docs/api.md
generate: $(VENV)/.synced
	$(BIN)/cozyplane generate

## packages: build the Configuration and Function packages into out/packages
packages: $(CRANK)
	package/build.sh $(CRANK) $(OUT)/packages

clean:
	rm -rf $(VENV) $(OUT) .tools
