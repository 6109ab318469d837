#!/usr/bin/env bash
# The main job on a built-in default: what `make demo` runs after building.
set -euo pipefail
build=${1:-build}
slm="$build/tools/slm-compress"
echo "== slm-compress info: the CPU and the kernel path slmc picks here"
"$slm" info
echo
echo "== memory read bandwidth (the roofline for GEMV kernels), 1 and 2 threads"
"$build/benchmarks/slmc_bench" --benchmark_filter='membw/streams4' --benchmark_min_time=0.2 2>/dev/null
