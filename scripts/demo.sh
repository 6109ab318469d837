#!/usr/bin/env bash
# The main job on a built-in default (what `make demo` runs after building): generate the
# deterministic synthetic Llama-shaped model, convert it with the default recipe (w4: int4 g32,
# mse scale search; embeddings int8; norms fp32), then inspect, verify and benchmark the result.
set -euo pipefail
build=${1:-build}
slm="$build/tools/slm-compress"
work="$build/demo"
rm -rf "$work" && mkdir -p "$work"
step() { printf '\n== %s\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }
step "the CPU and the kernel path slmc picks here" "$slm" info
step "a deterministic synthetic Llama-shaped model (heavy-tailed weights, outlier channels)" \
  "$slm" synth -o "$work/model"
step "convert with the default recipe" "$slm" convert "$work/model" -o "$work/model.slm"
step "inspect the result" "$slm" inspect "$work/model.slm"
step "verify checksums and recorded error statistics against the source" \
  "$slm" verify "$work/model.slm" --source "$work/model"
step "benchmark every linear layer against slmc's fp32 kernel (batch 1 = decode)" \
  "$slm" bench "$work/model.slm" --min-time 0.05
