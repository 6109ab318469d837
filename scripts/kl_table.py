#!/usr/bin/env python3
"""The quality table on SmolLM2-135M beside llama.cpp (issue #20): file size, bits/weight, PPL,
KL against each tool's own fp32 model and top-1 agreement, on the same held-out text and the same
protocol (llama-perplexity's: 512-token chunks, second half of each scored).

  usage: scripts/kl_table.py DIR [--peer BIN] [--recipes NAME=ARGS ...] [--llama Q8_0 Q4_0 ...]

DIR keeps every file made (GGUFs, .slm files, the KL base, logs) and writes DIR/table.md and
DIR/results.json. Never run in CI: the peer (../shared/peers/build-llama-cpp.sh) takes ~15 min to
build and the whole table ~20 min on 2 cores.

Texts, both from ../shared/models/tinystories-valid-excerpt/tinystories_val.txt and disjoint:
  held-out    the last HELDOUT_CHARS characters from the first paragraph start (~16,800 tokens,
              32 chunks of 512, 8,160 scored positions)
  calibration the first CALIB_CHARS characters (for `calibrate` and `llama-imatrix`)

Environment: SLM_COMPRESS (default build/tools/slm-compress), SLMC_MODELS_DIR (../shared/models),
SMOLLM2_GGUF (default ~/.cache/slmc/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf), THREADS (2).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELDOUT_CHARS = 75000
CALIB_CHARS = 200000

# Our recipes: name -> convert arguments (after IN -o OUT). Calibrated ones name {calib}.
DEFAULT_RECIPES = {
    "int8": ["--recipe", "int8"],
    "w4": ["--recipe", "w4"],
}
DEFAULT_LLAMA = ["Q8_0", "Q4_K_M", "IQ4_NL", "Q4_0"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, out=None, **kw):
    log("+ " + " ".join(cmd))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
    text = p.stdout.decode("utf-8", errors="replace")
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text)
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed (exit {p.returncode}):\n{text[-3000:]}")
    return text


def texts(models, out):
    story = open(os.path.join(models, "tinystories-valid-excerpt", "tinystories_val.txt"), encoding="utf-8").read()
    tail = story[-HELDOUT_CHARS:]
    heldout = tail[tail.index("\n\n") + 2:]
    calib = story[:CALIB_CHARS]
    calib = calib[:calib.rindex("\n\n")]
    assert len(calib) + len(heldout) < len(story), "calibration and held-out text overlap"
    paths = {}
    for name, t in (("heldout", heldout), ("calibration", calib)):
        paths[name] = os.path.join(out, name + ".txt")
        with open(paths[name], "w", encoding="utf-8") as fh:
            fh.write(t)
    return paths


def parse_llama_kl(text):
    def grab(pattern):
        m = re.search(pattern, text)
        return float(m.group(1)) if m else None
    return {
        "perplexity": grab(r"Mean PPL\(Q\)\s*:\s*([0-9.]+)"),
        "kl": grab(r"Mean\s+KLD:\s*([0-9.eE+-]+)"),
        "top1": grab(r"Same top p:\s*([0-9.]+)"),
        "tokens": None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--peer", default=os.path.expanduser("~/.cache/slmc-peers/llama.cpp/build/bin"))
    ap.add_argument("--recipes", nargs="*", default=None,
                    help="NAME=ARGS (ARGS split at spaces; {calib} = the calibration file), e.g. "
                         "'w4c=--recipe w4 --rule *_proj.weight=int4:group=32,search=weighted --calibration {calib}'")
    ap.add_argument("--llama", nargs="*", default=DEFAULT_LLAMA, help="llama-quantize types ('Q4_K_M+imatrix' uses llama-imatrix)")
    ap.add_argument("--act", nargs="*", default=["auto"], help="activation modes to evaluate our files with")
    ap.add_argument("--skip-ours", action="store_true")
    ap.add_argument("--gram", action="store_true", help="calibrate with --gram (Gram matrices: error compensation, GPTQ)")
    args = ap.parse_args()

    out = os.path.abspath(args.dir)
    os.makedirs(out, exist_ok=True)
    slm = os.path.abspath(os.environ.get("SLM_COMPRESS", os.path.join(ROOT, "build", "tools", "slm-compress")))
    models = os.environ.get("SLMC_MODELS_DIR", os.path.join(ROOT, "..", "shared", "models"))
    gguf = os.environ.get("SMOLLM2_GGUF", os.path.expanduser("~/.cache/slmc/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    threads = os.environ.get("THREADS", "2")
    paths = texts(models, out)
    results = {"cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t"),
               "date": time.strftime("%Y-%m-%d"), "heldout_chars": os.path.getsize(paths["heldout"]), "rows": []}
    recipes = dict(DEFAULT_RECIPES)
    if args.recipes is not None:
        recipes = {}
        for r in args.recipes:
            name, _, rest = r.partition("=")
            recipes[name] = rest.split()

    # llama.cpp: F32 base, quantized files, KL against the F32 logits.
    if args.llama:
        q = os.path.join(args.peer, "llama-quantize")
        ppl = os.path.join(args.peer, "llama-perplexity")
        f32 = os.path.join(out, "llama-F32.gguf")
        if not os.path.exists(f32):
            run([q, "--allow-requantize", gguf, f32, "F32"], out=f32 + ".log")
        base = os.path.join(out, "llama-F32.kld")
        if not os.path.exists(base):
            run([ppl, "-m", f32, "-f", paths["heldout"], "-c", "512", "-b", "512", "-t", threads,
                 "--kl-divergence-base", base], out=base + ".log")
        imatrix = None
        for t in args.llama:
            qtype, _, extra = t.partition("+")
            dst = os.path.join(out, f"llama-{t}.gguf")
            if not os.path.exists(dst):
                cmd = [q]
                if extra == "imatrix":
                    imatrix = os.path.join(out, "imatrix.dat")
                    if not os.path.exists(imatrix):
                        run([os.path.join(args.peer, "llama-imatrix"), "-m", f32, "-f", paths["calibration"], "-c", "512",
                             "-t", threads, "-o", imatrix], out=imatrix + ".log")
                    cmd += ["--imatrix", imatrix]
                run(cmd + [f32, dst, qtype], out=dst + ".log")
            text = run([ppl, "-m", dst, "-f", paths["heldout"], "-c", "512", "-b", "512", "-t", threads,
                        "--kl-divergence-base", base, "--kl-divergence"], out=dst + ".kl.log")
            row = {"tool": "llama.cpp", "recipe": t, "file_bytes": os.path.getsize(dst)}
            row.update(parse_llama_kl(text))
            results["rows"].append(row)
            log(json.dumps(row))

    # slm-compress: fp32 reference and each recipe, eval --protocol llamacpp --reference fp32.
    if not args.skip_ours:
        fp32 = os.path.join(out, "slmc-fp32.slm")
        if not os.path.exists(fp32):
            run([slm, "convert", gguf, "-o", fp32, "--recipe", "fp32", "--threads", threads])
        calib = os.path.join(out, "calibration-gram.bin" if args.gram else "calibration.json")
        if any("{calib}" in " ".join(a) for a in recipes.values()) and not os.path.exists(calib):
            run([slm, "calibrate", fp32, "--text", paths["calibration"], "--split", "all", "--threads", threads,
                 "-o", calib] + (["--gram"] if args.gram else []))
        for name, rargs in recipes.items():
            dst = os.path.join(out, f"slmc-{name}.slm")
            if not os.path.exists(dst):
                run([slm, "convert", gguf, "-o", dst, "--threads", threads] + [a.replace("{calib}", calib) for a in rargs])
            for act in args.act:
                text = run([slm, "eval", dst, "--text", paths["heldout"], "--protocol", "llamacpp", "--reference", fp32,
                            "--act", act, "--threads", threads, "--decode-tokens", "1", "--json"])
                j = json.loads(text[text.index("{"):])
                row = {"tool": "slm-compress", "recipe": name, "act": act, "file_bytes": os.path.getsize(dst),
                       "perplexity": j.get("perplexity"), "kl": j.get("kl"),
                       "top1": 100 * j["top1_agreement"] if j.get("top1_agreement") is not None else None,
                       "tokens": j.get("tokens")}
                results["rows"].append(row)
                log(json.dumps(row))

    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1)
    params = 134515008  # SmolLM2-135M (tied embeddings)
    lines = [f"SmolLM2-135M-Instruct, {results['date']}, {results['cpu']}; held-out text {results['heldout_chars']} chars, "
             "llama-perplexity protocol (-c 512, second half of each chunk); KL against each tool's own fp32.", "",
             "| tool | recipe | act | file MB | bits/weight | PPL | KL vs fp32 | top-1 % |", "|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        def f(v, fmt):
            return fmt.format(v) if v is not None else "–"
        lines.append(f"| {r['tool']} | {r['recipe']} | {r.get('act', '')} | {r['file_bytes'] / 1e6:.1f} | "
                     f"{8 * r['file_bytes'] / params:.2f} | {f(r['perplexity'], '{:.4f}')} | {f(r['kl'], '{:.5f}')} | "
                     f"{f(r['top1'], '{:.2f}')} |")
    with open(os.path.join(out, "table.md"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
