#!/usr/bin/env bash
# The MiniLM recipe table (README "all-MiniLM-L6-v2", docs/measurements/2026-12-02-minilm.md):
#   scripts/minilm-table.sh BUILD_DIR OUT_DIR
# converts all-MiniLM-L6-v2 (fetched by scripts/fetch-models.sh) with each recipe, evaluates each
# against the fp32 conversion on tests/data/text/minilm_sentences.txt (100 held-out TinyStories
# sentences) and times `embed` on those sentences three times over (300 inputs) at batch 1 and 32
# on 1 and 2 threads, best of 3 runs taken in rounds over the files. Writes OUT_DIR/table.md.
set -euo pipefail
BUILD=${1:?usage: minilm-table.sh BUILD_DIR OUT_DIR}
OUT=${2:?usage: minilm-table.sh BUILD_DIR OUT_DIR}
cd "$(dirname "$0")/.."
SLM=$(realpath "$BUILD/tools/slm-compress")
CACHE=${SLMC_CACHE_DIR:-${HOME:-/root}/.cache/slmc}
MODEL=$CACHE/models/minilm
TEXT=$(realpath tests/data/text/minilm_sentences.txt)
STORIES=$(realpath "${SLMC_MODELS_DIR:-../shared/models}/tinystories-valid-excerpt/tinystories_val.txt")
mkdir -p "$OUT"
cd "$OUT"
[[ -f "$MODEL/model.safetensors" ]] || { echo "minilm-table: $MODEL is missing (make models)"; exit 1; }

# Calibration: the first 200 paragraphs of the excerpt (inside its first 20 %; the sentences come
# from the rest).
python3 - "$STORIES" <<'EOF'
import sys
p = [x for x in open(sys.argv[1], encoding="utf-8").read().split("\n\n") if x.strip()]
open("cal.txt", "w", encoding="utf-8").write("\n\n".join(p[:200]))
EOF
LIN=(encoder.*.dense.weight encoder.*.self.*.weight)
rules() { for g in "${LIN[@]}"; do printf -- "--rule\n%s=%s\n" "$g" "$1"; done; }
"$SLM" convert "$MODEL" -o fp32.slm --recipe fp32 --json > fp32.json
"$SLM" calibrate fp32.slm --text cal.txt --split all --gram -o cal.bin > /dev/null
"$SLM" convert "$MODEL" -o int8.slm --recipe int8 --json > int8.json
mapfile -t R < <(rules int8:group=32)
"$SLM" convert "$MODEL" -o int8g32.slm --recipe int8 "${R[@]}" --json > int8g32.json
"$SLM" convert "$MODEL" -o w4.slm --recipe w4 --json > w4.json
mapfile -t R < <(rules int4:group=32,search=weighted)
"$SLM" convert "$MODEL" -o w4cal.slm --recipe w4 --calibration cal.bin "${R[@]}" --json > w4cal.json
mapfile -t R < <(rules int4:group=32,sym=false,search=weighted)
"$SLM" convert "$MODEL" -o w4calasym.slm --recipe w4 --calibration cal.bin "${R[@]}" --json > w4calasym.json

cat "$TEXT" "$TEXT" "$TEXT" > speed.txt
ROWS=("fp32 auto" "int8 auto" "int8 int8" "int8g32 auto" "int8g32 int8" "w4 auto" "w4 int8" "w4cal auto"
      "w4calasym auto" "w4calasym int8")
for row in "${ROWS[@]}"; do
  set -- $row
  "$SLM" eval "$1.slm" --reference fp32.slm --text "$TEXT" --act "$2" --json > "eval-$1-$2.json"
done
for round in 1 2 3; do
  for row in "${ROWS[@]}"; do
    set -- $row
    for b in 1 32; do
      for t in 1 2; do
        "$SLM" embed "$1.slm" --text speed.txt --batch $b --threads $t --act "$2" --no-verify --json |
          python3 -c "import json,sys; print(json.load(sys.stdin)['sentences_per_s'])" >> "speed-$1-$2-b$b-t$t.txt"
      done
    done
  done
done

python3 - <<'EOF'
import json
rows = [("fp32", "auto", "fp32"), ("int8", "auto", "int8 (preset: per channel)"),
        ("int8", "int8", "int8 (preset), `--act int8`"), ("int8g32", "auto", "int8 g32 linear"),
        ("int8g32", "int8", "int8 g32 linear, `--act int8`"), ("w4", "auto", "w4 (preset: int4 g32 mse)"),
        ("w4", "int8", "w4 (preset), `--act int8`"), ("w4cal", "auto", "int4 g32 calibrated (weighted + Gram)"),
        ("w4calasym", "auto", "int4 g32 asym calibrated"), ("w4calasym", "int8", "int4 g32 asym calibrated, `--act int8`")]
def best(f, a, b, t):
    return max(float(x) for x in open(f"speed-{f}-{a}-b{b}-t{t}.txt"))
base = best("fp32", "auto", 32, 1)
out = ["| recipe | file | bits/weight (linear) | mean cos | min cos | NN agreement | b1 t1 | b1 t2 | b32 t1 | b32 t2 | b32 t1 vs fp32 |",
       "|---|---|---|---|---|---|---|---|---|---|---|"]
for f, a, name in rows:
    conv = json.load(open(f"{f}.json"))
    lin = [t for t in conv["tensors"] if t["name"].startswith("encoder.") and t["name"].endswith("weight")
           and "LayerNorm" not in t["name"]]
    bits = 8 * sum(t["bytes_out"] for t in lin) / sum(t["bytes_in"] / 4 for t in lin)
    import os
    size = os.path.getsize(f"{f}.slm")
    e = json.load(open(f"eval-{f}-{a}.json"))
    sp = [best(f, a, b, t) for b in (1, 32) for t in (1, 2)]
    cos = "—" if f == "fp32" else f"{e['mean_cosine']:.5f}"
    mn = "—" if f == "fp32" else f"{e['min_cosine']:.5f}"
    nn = "—" if f == "fp32" else f"{100 * e['neighbour_agreement']:.0f} %"
    out.append(f"| {name} | {size:,} B | {bits:.2f} | {cos} | {mn} | {nn} | " + " | ".join(f"{v:.0f}" for v in sp) +
               f" | {sp[2] / base:.2f}× |")
open("table.md", "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
