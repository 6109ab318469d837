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
# Seeds of the input files read by path (fuzz_input_files): config.json, calibration, profile,
# tokenizer files of every kind, tokenizer_config.json.
mkdir -p "$work/seeds/input_files"
printf '\x00{"model_type":"llama","hidden_size":2,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":1,"num_key_value_heads":1,"max_position_embeddings":64,"rms_norm_eps":1e-5,"rope_theta":10000.0,"vocab_size":4,"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}}' > "$work/seeds/input_files/config"
printf '\x00{"model_type":"gpt2","n_embd":2,"n_layer":1,"n_head":1,"n_positions":8,"n_inner":null,"vocab_size":4}' > "$work/seeds/input_files/config_gpt2"
printf '\x01{"format":"slmc-calibration","version":1,"tensors":{"w":{"mean_sq":[1,2],"count":3,"gram":[1,0.5,2]}}}' > "$work/seeds/input_files/calibration"
for f in "$repo"/profiles/*.json; do { printf '\x02'; cat "$f"; } > "$work/seeds/input_files/profile_$(basename "$f" .json)"; done
printf '\x03{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true},"decoder":null,"normalizer":null}' > "$work/seeds/input_files/tokenizer_json"
for f in "$work"/seeds/gguf/good.gguf "$work"/seeds/slm/good.slm; do
  [[ -f $f ]] && { printf '\x03'; cat "$f"; } > "$work/seeds/input_files/tokenizer_$(basename "$f")"
done
[[ -f $models/stories260K/tok512.bin ]] && { printf '\x03'; cat "$models/stories260K/tok512.bin"; } > "$work/seeds/input_files/tokenizer_tok512"
printf '\x04{"bos_token":"<s>","eos_token":{"content":"<s>"},"add_bos_token":true,"chat_template":[{"name":"default","template":"{{ messages }}"}]}' > "$work/seeds/input_files/tokenizer_config"

declare -A corpus=([safetensors]=safetensors [gguf]=gguf [llama2c]=llama2c [slm]=slm [tokenize]=tokenize
                   [text_inputs]=text_inputs [input_files]=input_files [apply]=apply)
status=0
summary=()
for target in safetensors gguf llama2c slm tokenize text_inputs input_files apply; do
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
