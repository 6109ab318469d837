#!/usr/bin/env bash
# Regenerates the end-to-end evaluation table (README.md "Evaluation", docs/EVAL.md) from scratch,
# with the slm-compress command line only: converts stories260K with each recipe (the scheme
# applies to the linear layers; embeddings and norms stay fp32), calibrates on the calibration
# split (activation statistics and Gram matrices), evaluates every file on the whole evaluation
# split against the fp32 conversion, and writes DIR/table.md. DIR also keeps the .slm files, the
# calibration file, and each recipe's convert report and eval result (JSON).
#
# Usage: scripts/eval-table.sh DIR
# Environment:
#   SLM_COMPRESS     the binary (default: build/tools/slm-compress)
#   SLMC_MODELS_DIR  the models directory (default: ../shared/models)
#   THREADS          threads for every command (default 1: speeds are single-core figures)
#   MAX_TOKENS       tokens of the evaluation split to score (default 0 = all; e.g. 6000 for a
#                    quick run)
#   SPEED_RUNS       decode speed: the best of this many runs of 256 greedy steps from BOS per
#                    file, in rounds over the files (default 21; one run takes ~50 ms, so a busy
#                    machine shows in single runs)
#
# Quality is deterministic (the same file and figures for any THREADS). Quantized weights run
# with the runtime's default int8 activations (ActMode auto), as `slm-compress eval` does.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
out=$1
slm=${SLM_COMPRESS:-build/tools/slm-compress}
models=${SLMC_MODELS_DIR:-../shared/models}
threads=${THREADS:-1}
max_tokens=${MAX_TOKENS:-0}
speed_runs=${SPEED_RUNS:-21}
src="$models/stories260K/stories260K.bin"
tok="$models/stories260K/tok512.bin"
text="$models/tinystories-valid-excerpt/tinystories_val.txt"
for f in "$slm" "$src" "$tok" "$text"; do
  [[ -e "$f" ]] || { echo "$0: $f not found (set SLM_COMPRESS / SLMC_MODELS_DIR)" >&2; exit 2; }
done
mkdir -p "$out"

# name | label in the table | scheme of the linear layers (*_proj.weight) | calibrated?
recipes=(
  "fp32|fp32|fp32|no"
  "int8|int8 per channel|int8|no"
  "w4_absmax|w4 g32 absmax|int4:group=32,search=absmax|no"
  "w4_mse|w4 g32 mse|int4:group=32,search=mse|no"
  "w4_weighted|w4 g32 calibrated (weighted)|int4:group=32,search=weighted|yes"
  "prune50_magnitude|50% pruned, magnitude (fp32)|fp32:sparsity=0.5,prune=magnitude|no"
  "prune50_wanda|50% pruned, Wanda (fp32, calibrated)|fp32:sparsity=0.5,prune=wanda|yes"
)

run() {
  echo "+ $*" >&2
  "$@"
}

run "$slm" convert "$src" -o "$out/fp32.slm" --recipe fp32 --threads "$threads" --json >"$out/fp32.convert.json"
run "$slm" calibrate "$out/fp32.slm" --tokenizer "$tok" --text "$text" --gram --threads "$threads" \
  -o "$out/calibration.json" >/dev/null

for r in "${recipes[@]}"; do
  IFS='|' read -r name label scheme calibrated <<<"$r"
  if [[ $name != fp32 ]]; then
    cal=()
    [[ $calibrated == yes ]] && cal=(--calibration "$out/calibration.json")
    run "$slm" convert "$src" -o "$out/$name.slm" --recipe fp32 --rule "*_proj.weight=$scheme" ${cal[@]+"${cal[@]}"} \
      --threads "$threads" --json >"$out/$name.convert.json"
  fi
  run "$slm" eval "$out/$name.slm" --tokenizer "$tok" --text "$text" --reference "$out/fp32.slm" \
    --max-tokens "$max_tokens" --decode-tokens 0 --threads "$threads" --json >"$out/$name.eval.json"
  : >"$out/$name.speed.json"
done

# Decode speed in rounds over all files, so that a busy spell of the machine hits every file alike.
echo "+ $slm eval FILE.slm ... --max-tokens 1 --decode-tokens 256  ($speed_runs rounds over the files)" >&2
for ((i = 0; i < speed_runs; ++i)); do
  for r in "${recipes[@]}"; do
    name=${r%%|*}
    "$slm" eval "$out/$name.slm" --tokenizer "$tok" --text "$text" --max-tokens 1 --decode-tokens 256 \
      --threads "$threads" --json >>"$out/$name.speed.json"
  done
done

python3 - "$out" "$threads" "${recipes[@]}" <<'EOF'
import json, os, sys
out, threads = sys.argv[1], sys.argv[2]
rows = [r.split("|") for r in sys.argv[3:]]
lines = ["| recipe (linear layers) | file size | bits/weight (linear) | perplexity | ΔPPL | KL (nats/token) "
         "| top-1 agreement | decode tokens/s |", "|---|---|---|---|---|---|---|---|"]
tokens = None
for name, label, scheme, _ in rows:
    conv = json.load(open(os.path.join(out, name + ".convert.json")))
    ev = json.load(open(os.path.join(out, name + ".eval.json")))
    speed, text, at = [], open(os.path.join(out, name + ".speed.json")).read(), 0
    while True:  # one JSON document per run
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            break
        doc, at = json.JSONDecoder().raw_decode(text, at)
        speed.append(doc["decode_tokens_per_s"])
    tokens = ev["tokens"]
    lin = [t for t in conv["tensors"] if t["name"].endswith("_proj.weight")]
    weights = sum(t["shape"][0] * t["shape"][1] for t in lin)
    bpw = 8.0 * sum(t["bytes_out"] for t in lin) / weights
    size = os.path.getsize(os.path.join(out, name + ".slm"))
    dppl = "—" if name == "fp32" else "%+.2f%%" % ev["delta_ppl_percent"]
    lines.append("| %s | %s bytes | %.3f | %.4f | %s | %.4f | %.2f%% | %.0f |" % (
        label, format(size, ","), bpw, ev["perplexity"], dppl, ev["kl"], 100 * ev["top1_agreement"],
        max(speed)))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
lines.append("")
lines.append("stories260K, %s tokens of the evaluation split (window 512), reference = the fp32 conversion; "
             "decode: best of %d runs of 256 tokens, %s thread(s), %s, load average %.1f at the end."
             % (format(tokens, ","), len(speed), threads, cpu, os.getloadavg()[0]))
with open(os.path.join(out, "table.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
