# Coverage-guided fuzzing of mcp-core with libFuzzer on the stable toolchain (fuzz/README.md).
# Included from the top-level Makefile; fuzz/run.sh does the work.

FUZZ_SECONDS ?= 60

.PHONY: fuzz fuzz-build
fuzz: ## Build the fuzz targets (stable, libFuzzer) and run each for FUZZ_SECONDS (default 60)
	FUZZ_SECONDS=$(FUZZ_SECONDS) CARGO=$(CARGO) fuzz/run.sh

fuzz-build: ## Build the fuzz target binaries only
	CARGO=$(CARGO) fuzz/run.sh --build-only
