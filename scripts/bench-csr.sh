#!/bin/bash
# The kernel issue's CSR f32 targets as same-run ratios (docs/measurements/2026-11-29.md, session 6):
# CSR vs Eigen CSR at 50/70/90/95 % sparsity and N = 1/8/32/128, and CSR vs OpenBLAS sgemv at
# N = 1 for 70 % and 90 %; 4096 x 4096, 1 thread, 3 rounds of 3 repetitions (about 4-5 minutes).
#   scripts/bench-csr.sh [path/to/slmc_bench] [extra bench_ratios.py arguments, e.g. --json out.json]
set -euo pipefail
BENCH=${1:-build/benchmarks/slmc_bench}
shift || true
cd "$(dirname "$0")/.."
S=4096x4096
args=()
for n in 1 8 32 128; do
  for s in 50 70 90 95; do
    args+=(--ratio "CSR ${s}% N=$n vs Eigen CSR=baseline/eigen_csr/$s/$S/n:$n/omp:1:linear/csr_f32_s$s/fp32/$S/n:$n/omp:1")
  done
done
for s in 70 90; do
  args+=(--ratio "CSR ${s}% N=1 vs sgemv=baseline/openblas_sgemm/$S/n:1/omp:1:linear/csr_f32_s$s/fp32/$S/n:1/omp:1")
done
exec python3 scripts/bench_ratios.py --bench "$BENCH" --rounds 3 --repetitions 3 "${args[@]}" "$@" \
  --filter "^(baseline/eigen_csr/(50|70|90|95)|linear/csr_f32_s(50|70|90|95)/fp32|baseline/openblas_sgemm)/$S/n:(1|8|32|128)/omp:1/"
