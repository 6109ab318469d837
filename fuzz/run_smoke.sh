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

# Seeds of the text targets: every line of the multilingual test text for the tokenizers; one
# well-formed input per parser (selected by the first byte) for the other text inputs.
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$work/seeds/tokenize" "$work/seeds/text_inputs"
awk -v d="$work/seeds/tokenize" '{ f = d "/line" NR; printf "%s", $0 > f; close(f) }' "$repo/tests/data/text/multilingual.txt"
printf '\x00{"format":"slmc-calibration","version":1,"tensors":{"w":{"mean_sq":[1,2],"count":3}}}' > "$work/seeds/text_inputs/calibration"
printf '\x01{"format":"slmc-recipe","version":1,"default":"int4:group=32","rules":[{"match":"@mlp","scheme":"int8"}]}' > "$work/seeds/text_inputs/recipe"
printf "\x02{{ '<|im_start|>system\\nX<|im_end|>' }}<|im_start|>" > "$work/seeds/text_inputs/chat"
printf '\x03{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true},"decoder":null,"normalizer":null}' > "$work/seeds/text_inputs/tokenizer_json"
printf '\x04int4:group=32,sym=false' > "$work/seeds/text_inputs/scheme"

declare -A corpus=([safetensors]=safetensors [gguf]=gguf [llama2c]=llama2c [slm]=slm [tokenize]=tokenize
                   [text_inputs]=text_inputs)
status=0
summary=()
for target in safetensors gguf llama2c slm tokenize text_inputs; do
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
