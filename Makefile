# Entry points. Every target installs what it needs first (scripts/setup.sh is idempotent).
#   make demo       install, build (Release), run the main job on the built-in default
#   make test       install, build, fetch the real models (scripts/fetch-models.sh), run the whole
#                   test suite through ctest
#   make models     fetch the real models and the Python oracles into ~/.cache/slmc (SLMC_CACHE_DIR)
#   make bench      run slmc_bench (BENCH_FILTER=regex to select cases)
#   make bench-targets  the kernel targets as same-run ratios (scripts/bench-targets.sh, ~7 min)
#   make bench-csr  the CSR f32 targets as same-run ratios (scripts/bench-csr.sh, ~5 min)
#   make bench-e2e  SmolLM2 end to end beside llama-bench (scripts/bench-e2e.sh, ~15 min; skips when
#                   the llama.cpp peer is not built)
#   make asan       the test suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make noomp      build and test with SLMC_OPENMP=OFF
#   make fuzz-smoke clang libFuzzer builds of every fuzz target (build-fuzz/), FUZZ_SECONDS each (60):
#                   the readers, the .slm loader, the tokenizers, the text inputs (JSON, templates),
#                   the input files read by path (config.json, calibration, profile, tokenizer files)
#                   and apply (.slmdelta updates, with and without repaired checksums)
#   make test-arm64 cross-build for aarch64, run the suite under qemu (with and without dotprod)
SHELL := /bin/bash
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
CMAKE_ARGS ?=
BENCH_FILTER ?= .
SLM := $(BUILD_DIR)/tools/slm-compress

FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 60

.PHONY: setup configure build models demo test bench bench-targets bench-csr bench-e2e asan noomp test-arm64 fuzz-smoke clean

setup:
	@bash scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS) > $(BUILD_DIR).configure.log || \
	  { cat $(BUILD_DIR).configure.log; exit 1; }
	@grep -E "^-- slmc" $(BUILD_DIR).configure.log || true

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD_DIR)

models:
	@bash scripts/fetch-models.sh

test: build models
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

bench: build
	@$(BUILD_DIR)/benchmarks/slmc_bench --benchmark_filter='$(BENCH_FILTER)'

bench-targets: build
	@bash scripts/bench-targets.sh $(BUILD_DIR)/benchmarks/slmc_bench

bench-csr: build
	@bash scripts/bench-csr.sh $(BUILD_DIR)/benchmarks/slmc_bench

bench-e2e: build models
	@bash scripts/bench-e2e.sh $(SLM)

asan:
	@$(MAKE) --no-print-directory test BUILD_DIR=build-asan BUILD_TYPE=RelWithDebInfo \
	  CMAKE_ARGS='-DSLMC_SANITIZE="address;undefined" -DSLMC_BUILD_BENCHMARKS=OFF'

noomp:
	@$(MAKE) --no-print-directory test BUILD_DIR=build-noomp CMAKE_ARGS='-DSLMC_OPENMP=OFF -DSLMC_BUILD_BENCHMARKS=OFF'

test-arm64:
	@bash scripts/test-arm64.sh

fuzz-smoke:
	@bash scripts/setup.sh --fuzz
	@CC=clang-14 CXX=clang++-14 cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLMC_BUILD_FUZZERS=ON \
	  -DSLMC_BUILD_TESTS=OFF -DSLMC_BUILD_BENCHMARKS=OFF -DSLMC_BUILD_TOOLS=OFF -DSLMC_BUILD_EXAMPLES=OFF \
	  -DSLMC_OPENMP=OFF -DSLMC_SANITIZE="address;undefined;fuzzer-no-link" > $(FUZZ_DIR).configure.log || \
	  { cat $(FUZZ_DIR).configure.log; exit 1; }
	@cmake --build $(FUZZ_DIR) -j $(JOBS) --target slmc_fuzzers
	@bash fuzz/run_smoke.sh $(FUZZ_DIR) $(FUZZ_SECONDS)

clean:
	rm -rf build build-asan build-noomp build-arm64 build-fuzz *.configure.log
