#!/bin/bash
# The kernel issue's targets as same-run ratios (docs/KERNELS.md "Measured"): 5 rounds of 3
# repetitions of every case involved, fastest and median repetition side by side.
#   scripts/bench-targets.sh [path/to/slmc_bench] [extra bench_ratios.py arguments, e.g. --json out.json]
# About 6-7 minutes on the 2-core reference machine (the 8192^2 cases rebuild 160 MiB of weights
# each round).
set -euo pipefail
BENCH=${1:-build/benchmarks/slmc_bench}
shift || true
cd "$(dirname "$0")/.."
D8='8192x8192/n:1'    # DRAM-resident GEMV
G4='4096x4096/n:128'  # GEMM
B8='4096x4096/n:8'    # small batch
case_() { echo "linear/$1/int8/$2/omp:$3"; }
# Sparse int8 kernels take one activation scale per row (int8-row): compared with dense int8-row.
caser() { echo "linear/$1/int8-row/$2/omp:$3"; }
sgemv1=baseline/openblas_sgemm/$D8/omp:1
sgemm1=baseline/openblas_sgemm/$G4/omp:1
sgemm8=baseline/openblas_sgemm/$B8/omp:1
i8r1=int8_channel_sym_f32 i8r8=int8_channel_sym_f32_r8 i4g32=int4_g32_sym_f16_r8 i4g128=int4_g128_sym_f16_r8
args=(
  --fraction "int8 GEMV (plain rows) / streams4, 1 thread=membw/streams4/256MiB/omp:1:$(case_ $i8r1 $D8 1)"
  --fraction "int8 GEMV (plain rows) / rows4, 1 thread=membw/rows4/256MiB/omp:1:$(case_ $i8r1 $D8 1)"
  --fraction "int8 GEMV (plain rows) / streams4, 2 threads=membw/streams4/256MiB/omp:2:$(case_ $i8r1 $D8 2)"
  --fraction "int8 GEMV (R=8) / streams4, 2 threads=membw/streams4/256MiB/omp:2:$(case_ $i8r8 $D8 2)"
  --fraction "int4 g32 GEMV / streams4, 2 threads=membw/streams4/256MiB/omp:2:$(case_ $i4g32 $D8 2)"
  --fraction "int4 g128 GEMV / streams4, 2 threads=membw/streams4/256MiB/omp:2:$(case_ $i4g128 $D8 2)"
  --ratio "int8 GEMV vs sgemv=$sgemv1:$(case_ $i8r1 $D8 1)"
  --ratio "int4 g32 GEMV vs sgemv=$sgemv1:$(case_ $i4g32 $D8 1)"
  --ratio "2:4 int8 vs dense int8 (int8-row)=$(caser $i8r1 $D8 1):$(caser nm2of4_int8_s50 $D8 1)"
  --ratio "2:4 int4 vs dense int8 (int8-row)=$(caser $i8r1 $D8 1):$(caser nm2of4_int4_s50 $D8 1)"
  --ratio "bitmask int8 50% vs dense int8 (int8-row)=$(caser $i8r1 $D8 1):$(caser bitmask_int8_s50 $D8 1)"
  --ratio "GEMM W8A8 vs sgemm=$sgemm1:$(case_ $i8r8 $G4 1)"
  --ratio "GEMM W4A8 g32 vs sgemm=$sgemm1:$(case_ $i4g32 $G4 1)"
  --ratio "GEMM W4A8 g128 vs sgemm=$sgemm1:$(case_ $i4g128 $G4 1)"
  --ratio "N=8 W8A8 (plain rows) vs sgemm=$sgemm8:$(case_ $i8r1 $B8 1)"
  --ratio "N=8 W8A8 (R=8) vs sgemm=$sgemm8:$(case_ $i8r8 $B8 1)"
  --ratio "N=8 W4A8 g32 vs sgemm=$sgemm8:$(case_ $i4g32 $B8 1)"
  --ratio "sgemm, 2 threads vs 1=$sgemm1:baseline/openblas_sgemm/$G4/omp:2"
  --ratio "GEMM W8A8 (plain rows), 2 threads vs 1=$(case_ $i8r1 $G4 1):$(case_ $i8r1 $G4 2)"
  --ratio "GEMM W8A8 (R=8), 2 threads vs 1=$(case_ $i8r8 $G4 1):$(case_ $i8r8 $G4 2)"
  --ratio "GEMM W4A8 g32, 2 threads vs 1=$(case_ $i4g32 $G4 1):$(case_ $i4g32 $G4 2)"
  --ratio "GEMM W4A8 g128, 2 threads vs 1=$(case_ $i4g128 $G4 1):$(case_ $i4g128 $G4 2)"
)
exec python3 scripts/bench_ratios.py --bench "$BENCH" --rounds 5 --repetitions 3 "${args[@]}" "$@" \
  --filter "^(membw/(streams4|rows4)/256MiB/omp:(1|2)|baseline/openblas_sgemm/($D8|$G4)/omp:(1|2)|baseline/openblas_sgemm/$B8/omp:1|linear/($i8r1|$i8r8|$i4g32|$i4g128)/int8/($D8|$G4)/omp:(1|2)|linear/($i8r1|$i8r8|$i4g32)/int8/$B8/omp:1|linear/($i8r1|nm2of4_int8_s50|nm2of4_int4_s50|bitmask_int8_s50)/int8-row/$D8/omp:1)/"
