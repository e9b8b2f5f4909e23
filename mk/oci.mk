# OCI images of the filters for Istio (`WasmPlugin.url` / EnvoyFilter `oci://...`), built without
# docker. Included from the top-level Makefile.
#
#   dist/oci/<filter>/   an OCI image layout per filter (oci-layout, index.json, blobs/sha256/...):
#                        the Wasm image spec "compat" variant Istio's image fetcher tries first, one
#                        application/vnd.oci.image.layer.v1.tar+gzip layer holding plugin.wasm.
#                        Reproducible: the same dist/<filter>.wasm always gives the same digests.
#
# Push with any OCI tool, e.g. `crane push dist/oci/mcp_tools registry.example.com/mcp/mcp_tools:0.1.0`,
# `skopeo copy oci:dist/oci/mcp_tools docker://registry.example.com/mcp/mcp_tools:0.1.0` or
# `oras cp --from-oci-layout dist/oci/mcp_tools:0.1.0 registry.example.com/mcp/mcp_tools:0.1.0`.

OCI_DIR := dist/oci
OCI_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

.PHONY: oci oci-registry
oci: build ## OCI image layouts of the filters for Istio under dist/oci/ (no docker; reproducible)
	$(CARGO) run --quiet -p mcp-integration --bin mcp-oci -- --dist dist --out $(OCI_DIR) --tag $(OCI_TAG) $(FILTERS)

# tests/tests/oci.rs pushes the layouts to a throwaway local registry and pulls them back; it
# skips that part (with a printed reason) when /usr/bin/docker-registry is absent.
oci-registry: ## Install Debian's docker-registry (used by the OCI push/pull test)
	@command -v docker-registry >/dev/null || { echo "installing docker-registry (Debian)"; apt-get install -y -qq docker-registry >/dev/null || { apt-get update -qq && apt-get install -y -qq docker-registry >/dev/null; }; }

integration: oci-registry
