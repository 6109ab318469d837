#!/usr/bin/env bash
# docs/FLEET.md §7.3: two releases of SmolLM2-135M with the example fleet's profiles
# (examples/profiles/*.json), the second with a recipe change in one profile and --previous.
#   usage: scripts/measure_release_smollm2.sh WORKDIR
#   environment: SLM, SMOLLM2_GGUF, SLMC_MODELS_DIR, THREADS (1), MAX_TOKENS (1024), MIN_TOK_S (unset:
#   the profiles' gates; a number overrides them, e.g. on a shared machine whose load makes decode
#   rates meaningless for a fleet)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${1:?WORKDIR}
SLM=${SLM:-$root/build/tools/slm-compress}
src=${SMOLLM2_GGUF:-$HOME/.cache/slmc/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
models=${SLMC_MODELS_DIR:-$root/../shared/models}
threads=${THREADS:-1}
overrides=()
[[ -n "${MIN_TOK_S:-}" ]] && overrides+=(--min-tok-s "$MIN_TOK_S")
mkdir -p "$work"
# The held-out text of scripts/kl_table.py: the last 75,000 characters of the TinyStories excerpt,
# from the first paragraph start (release evaluates its eval split, --max-tokens of it).
python3 - "$models/tinystories-valid-excerpt/tinystories_val.txt" "$work/heldout.txt" <<'PY'
import sys
story = open(sys.argv[1], encoding="utf-8").read()
tail = story[-75000:]
open(sys.argv[2], "w", encoding="utf-8").write(tail[tail.index("\n\n") + 2:])
PY
[[ -f "$work/release.key" ]] || "$SLM" keygen -o "$work/release.key" > /dev/null
profiles=(--profile "$root/examples/profiles/x86-avx2.json" --profile "$root/examples/profiles/x86-avx512.json"
          --profile "$root/examples/profiles/cortex-a53.json")
common=(--text "$work/heldout.txt" --max-tokens "${MAX_TOKENS:-1024}" --threads "$threads" --sign "$work/release.key"
        --force --json "${overrides[@]}")
/usr/bin/time -v "$SLM" release "$src" "${profiles[@]}" "${common[@]}" --release v1 -o "$work/v1" \
  > "$work/v1.json" 2> "$work/v1.time"
# v2: the x86-avx2 profile keeps the last layer's MLP in int8 (a recipe change in 3 tensors).
python3 - "$root/examples/profiles/x86-avx2.json" "$work/x86-avx2.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["rules"] = ["*.layers.29.mlp.*=int8"]
json.dump(p, open(sys.argv[2], "w"), indent=2)
PY
profiles[1]="$work/x86-avx2.json"
/usr/bin/time -v "$SLM" release "$src" "${profiles[@]}" "${common[@]}" --release v2 \
  --previous "$work/v1/manifest.json" -o "$work/v2" > "$work/v2.json" 2> "$work/v2.time"
"$SLM" verify "$work/v2/manifest.json" --pubkey "$work/release.key.pub"
grep -E "Elapsed|Maximum resident" "$work/v1.time" "$work/v2.time"
