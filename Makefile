# The two set-up commands of the README: `make render` (the main job) and `make test`.
# Both install everything they need on a fresh machine: a pinned uv, then the locked
# dependencies into .venv. Tools are cached outside the checkout, so fresh clones reuse them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

PYTHON ?= python3.11
UV_VERSION := 0.13.8
CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/cozyplane
UV := $(CACHE)/uv-$(UV_VERSION)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
OUT := out
EXAMPLES := $(wildcard examples/*.yaml)

.PHONY: render test lint generate clean

$(UV):
	$(PYTHON) -m venv $(CACHE)/uv-$(UV_VERSION)
	$(CACHE)/uv-$(UV_VERSION)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

## render: render every example claim through function-cozyplane into out/
render: $(VENV)/.synced
	mkdir -p $(OUT)
	@for claim in $(EXAMPLES); do \
	  name=$$(basename $$claim); \
	  $(BIN)/cozyplane render $$claim --required examples/environment --include-xr > $(OUT)/$$name; \
	  echo "$$claim -> $(OUT)/$$name ($$(grep -c '^---' $(OUT)/$$name) objects, composite first)"; \
	done

## lint: formatting, lint rules and strict typing
lint: $(VENV)/.synced
	$(BIN)/ruff format --check functions tests
	$(BIN)/ruff check functions tests
	$(BIN)/mypy functions tests

## test: the whole suite, lint included (what CI runs)
test: lint
	$(BIN)/pytest

## generate: rewrite the XRDs, Compositions, input CRD and ClusterRoles from the models
generate: $(VENV)/.synced
	$(BIN)/cozyplane generate

clean:
	rm -rf $(VENV) $(OUT)
