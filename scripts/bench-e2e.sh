#!/bin/bash
# End to end beside llama.cpp (issue #21): `slm-compress bench --e2e` and `llama-bench` on SmolLM2-135M
# with the same recipe family (our fp32 / int8 / w4 against llama.cpp's F32 / Q8_0 / Q4_0, all made
# from the same Q4_1 GGUF), prefill pp512 and decode tg128 at 1 and 2 threads, in interleaved
# rounds (every round runs every case once, so background load hits all of them alike). Prints each
# case's fastest and median repetition and our/llama.cpp ratios of both.
#   scripts/bench-e2e.sh [path/to/slm-compress] [--json OUT.json]
# Environment: ROUNDS (3), REPS per run (3), PP (512), TG (128), THREADS ("1 2"), PAIRS
# ("fp32:F32 int8:Q8_0 w4:Q4_0"), SLMC_PEER_BIN (llama.cpp's build/bin), SLMC_CACHE_DIR (~/.cache/slmc),
# LLAMA_REPACK (0: see below), BEFORE (a second slm-compress binary, e.g. an older commit's, run on
# the same files in the same rounds: its figures and after/before ratios are added). About 15
# minutes on the 2-core reference machine (20 with BEFORE).
#
# llama.cpp runs with --repack 0: on the reference VM its AMX extra buffer type faults (SIGILL in
# ggml_backend_amx_mul_mat: the CPU reports AMX, the hypervisor does not enable the tile state), and
# llama-bench has one switch for all extra buffer types, so its x86 repacked Q4_0 kernels are off
# too. LLAMA_REPACK=1 turns them back on where AMX works (or llama.cpp was built with GGML_AMX off).
set -euo pipefail
cd "$(dirname "$0")/.."
SLM=${1:-build/tools/slm-compress}
shift || true
JSON_OUT=""
if [[ "${1:-}" == "--json" ]]; then JSON_OUT=$2; fi
CACHE=${SLMC_CACHE_DIR:-$HOME/.cache/slmc}
PEER=${SLMC_PEER_BIN:-$HOME/.cache/slmc-peers/llama.cpp/build/bin}
ROUNDS=${ROUNDS:-3} REPS=${REPS:-3} PP=${PP:-512} TG=${TG:-128}
THREADS=${THREADS:-"1 2"} PAIRS=${PAIRS:-"fp32:F32 int8:Q8_0 w4:Q4_0"} LLAMA_REPACK=${LLAMA_REPACK:-0}
SRC=$CACHE/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
WORK=$CACHE/bench-e2e

if [[ ! -x "$PEER/llama-bench" || ! -x "$PEER/llama-quantize" ]]; then
  echo "bench-e2e: skipped: llama.cpp is not built at $PEER (llama-bench, llama-quantize); set SLMC_PEER_BIN"
  exit 0
fi
if [[ ! -f "$SRC" ]]; then
  echo "bench-e2e: skipped: $SRC is missing (make models)"
  exit 0
fi
[[ -x "$SLM" ]] || { echo "bench-e2e: $SLM is not built (make build)" >&2; exit 1; }
mkdir -p "$WORK"
for pair in $PAIRS; do
  ours=${pair%%:*} theirs=${pair##*:}
  if [[ ! -f "$WORK/smollm2-$ours.slm" ]]; then
    echo "converting smollm2-$ours.slm" >&2
    "$SLM" convert "$SRC" -o "$WORK/smollm2-$ours.slm" --recipe "$ours" > /dev/null
  fi
  if [[ ! -f "$WORK/smollm2-$theirs.gguf" ]]; then
    echo "quantizing smollm2-$theirs.gguf" >&2
    "$PEER/llama-quantize" --allow-requantize "$SRC" "$WORK/smollm2-$theirs.gguf" "$theirs" > "$WORK/quantize-$theirs.log" 2>&1
  fi
done

RAW=$(mktemp -d)
trap 'rm -rf "$RAW"' EXIT
"$SLM" info --json > "$RAW/info.json"
for ((r = 1; r <= ROUNDS; ++r)); do
  for pair in $PAIRS; do
    ours=${pair%%:*} theirs=${pair##*:}
    for t in $THREADS; do
      echo "round $r/$ROUNDS: $ours vs $theirs, $t thread(s)" >&2
      "$SLM" bench "$WORK/smollm2-$ours.slm" --e2e --prompt-tokens "$PP" --gen-tokens "$TG" --threads "$t" \
        --repetitions "$REPS" --no-verify --json > "$RAW/slmc-$ours-$t-$r.json"
      if [[ -n "${BEFORE:-}" ]]; then
        "$BEFORE" bench "$WORK/smollm2-$ours.slm" --e2e --prompt-tokens "$PP" --gen-tokens "$TG" --threads "$t" \
          --repetitions "$REPS" --no-verify --json > "$RAW/before-$ours-$t-$r.json"
      fi
      "$PEER/llama-bench" -m "$WORK/smollm2-$theirs.gguf" -p "$PP" -n "$TG" -t "$t" -r "$REPS" \
        --repack "$LLAMA_REPACK" -o json > "$RAW/llama-$theirs-$t-$r.json" 2> "$RAW/llama-$theirs-$t-$r.err"
    done
  done
done

python3 - "$RAW" "$PP" "$TG" "$THREADS" "$PAIRS" "$JSON_OUT" "$LLAMA_REPACK" <<'PY'
import glob, json, os, statistics, sys
raw, pp, tg, threads, pairs, json_out, repack = sys.argv[1:8]
threads = threads.split()
pairs = [p.split(":") for p in pairs.split()]
info = json.load(open(os.path.join(raw, "info.json")))
rows, out = [], []
cpu = info["cpu"]["brand"]
for ours, theirs in pairs:
    for t in threads:
        s = {"pp": [], "tg": []}
        l = {"pp": [], "tg": []}
        for f in sorted(glob.glob(os.path.join(raw, f"slmc-{ours}-{t}-*.json"))):
            j = json.load(open(f))
            s["pp"] += j["prefill"]["samples"]
            s["tg"] += j["decode"]["samples"]
            isa = f'{j["isa"]} (linear: {j["kernel_isa"]})'
        bf = {"pp": [], "tg": []}
        for f in sorted(glob.glob(os.path.join(raw, f"before-{ours}-{t}-*.json"))):
            j = json.load(open(f))
            bf["pp"] += j["prefill"]["samples"]
            bf["tg"] += j["decode"]["samples"]
        for f in sorted(glob.glob(os.path.join(raw, f"llama-{theirs}-{t}-*.json"))):
            for test in json.load(open(f)):
                key = "pp" if test["n_prompt"] > 0 else "tg"
                l[key] += test["samples_ts"]
        for key, n in (("pp", pp), ("tg", tg)):
            a, b = s[key], l[key]
            r = {"test": f"{key}{n}", "threads": int(t), "slmc": ours, "llamacpp": theirs,
                 "slmc_fastest": max(a), "slmc_median": statistics.median(a),
                 "llamacpp_fastest": max(b), "llamacpp_median": statistics.median(b), "samples": [len(a), len(b)]}
            r["ratio_fastest"] = r["slmc_fastest"] / r["llamacpp_fastest"]
            r["ratio_median"] = r["slmc_median"] / r["llamacpp_median"]
            if bf[key]:
                r["before_fastest"], r["before_median"] = max(bf[key]), statistics.median(bf[key])
                r["before_ratio_fastest"] = max(bf[key]) / r["llamacpp_fastest"]
                r["before_ratio_median"] = r["before_median"] / r["llamacpp_median"]
                r["after_vs_before_fastest"] = r["slmc_fastest"] / r["before_fastest"]
                r["after_vs_before_median"] = r["slmc_median"] / r["before_median"]
            out.append(r)
print(f"CPU: {cpu}; features: {info['cpu']['features']}; slmc ISA: {isa}; llama.cpp --repack {repack}")
print("tokens/s, fastest / median over all repetitions of all rounds; ratio = slmc / llama.cpp"
      + ("; before = the BEFORE binary, same files and rounds" if any("before_fastest" in r for r in out) else "") + "\n")
hdr = ["test", "threads", "slmc", "llama.cpp", "slmc t/s", "llama.cpp t/s", "ratio fastest", "ratio median"]
table = [hdr] + [[r["test"], str(r["threads"]), r["slmc"], r["llamacpp"],
                  f'{r["slmc_fastest"]:.1f} / {r["slmc_median"]:.1f}',
                  f'{r["llamacpp_fastest"]:.1f} / {r["llamacpp_median"]:.1f}',
                  f'{r["ratio_fastest"]:.2f}x', f'{r["ratio_median"]:.2f}x'] for r in out]
if any("before_fastest" in r for r in out):
    hdr += ["before t/s", "before / llama.cpp", "after / before"]
    table[0] = hdr
    for row, r in zip(table[1:], out):
        row += [f'{r["before_fastest"]:.1f} / {r["before_median"]:.1f}',
                f'{r["before_ratio_fastest"]:.2f}x / {r["before_ratio_median"]:.2f}x',
                f'{r["after_vs_before_fastest"]:.2f}x / {r["after_vs_before_median"]:.2f}x']
w = [max(len(row[i]) for row in table) for i in range(len(hdr))]
for i, row in enumerate(table):
    print("| " + " | ".join(c.ljust(w[k]) for k, c in enumerate(row)) + " |")
    if i == 0:
        print("|" + "|".join("-" * (x + 2) for x in w) + "|")
if json_out:
    json.dump({"cpu": cpu, "features": info["cpu"]["features"], "llama_repack": int(repack), "results": out},
              open(json_out, "w"), indent=2)
PY
