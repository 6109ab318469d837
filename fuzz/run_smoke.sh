#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 60) on a generated seed corpus and prints
# executions and findings. Usage: fuzz/run_smoke.sh <fuzz_build_dir> [seconds] [models_dir]
set -uo pipefail
build=${1:?fuzz build dir}
seconds=${2:-60}
models=${3:-$(cd "$(dirname "$0")/../.." && pwd)/shared/models}
work="$build/fuzz-work"
rm -rf "$work/seeds"
mkdir -p "$work/seeds" "$work/artifacts"
"$build/fuzz/slmc_fuzz_seeds" "$work/seeds" "$models" || exit 1

declare -A corpus=([safetensors]=safetensors [gguf]=gguf [llama2c]=llama2c [slm]=slm)
status=0
summary=()
for target in safetensors gguf llama2c slm; do
  bin="$build/fuzz/slmc_fuzz_$target"
  live="$work/corpus/$target"
  mkdir -p "$live"
  log="$work/$target.log"
  echo "fuzz-smoke: $target for ${seconds}s"
  "$bin" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=4096 -timeout=25 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/$target-" "$live" "$work/seeds/${corpus[$target]}" >"$log" 2>&1
  rc=$?
  execs=$(grep -E "stat::number_of_executed_units" "$log" | awk '{print $2}')
  cov=$(grep -E "^#[0-9]+.*(DONE|INITED)" "$log" | tail -1 | grep -oE "cov: [0-9]+" | awk '{print $2}')
  crashes=$(ls "$work/artifacts/$target-"* 2>/dev/null | wc -l)
  summary+=("$target: rc=$rc executions=${execs:-?} coverage=${cov:-?} artifacts=$crashes corpus=$(ls "$live" | wc -l)")
  if [[ $rc -ne 0 ]]; then
    status=1
    grep -E "ERROR|SUMMARY|runtime error" "$log" | head -5
  fi
done
printf '%s\n' "${summary[@]}"
exit $status
