#!/usr/bin/env python3
"""Measures .slmdelta updates of SmolLM2-135M (the table in docs/FLEET.md).

Usage: ~/.cache/slmc/venv/bin/python scripts/measure_delta_smollm2.py BUILD/tools/slm-compress WORKDIR [TEXT]

  (a) recipe change: int8 everywhere -> int4 (g32) in three tensors, from the GGUF (tokenizer in the header)
  (b) fine-tune-like change: a rank-8 update with Frobenius norm 1 % of the weight's added to every
      attention projection (q, k, v, o) of every layer, both sides converted with the same recipe (int8)
      from an fp32 safetensors export
  (c) with TEXT: a recalibration: int4 g32 search=weighted on every projection, calibrated on 4096
      tokens of TEXT's calibration split (OLD) and then on 4096 tokens of its eval split (NEW)
For each: full file, delta (and the time to write it), `zstd -19` of NEW, apply time and peak RSS
(/usr/bin/time -v), and that apply reproduced NEW byte for byte. Prints a Markdown table and writes
WORKDIR/delta_measurements.json. Needs numpy and safetensors (the venv of `make models`)."""
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
from safetensors.numpy import load_file, save_file

GGUF = os.path.expanduser(os.path.join(os.environ.get("SLMC_CACHE_DIR", "~/.cache/slmc"), "models", "smollm2",
                                       "SmolLM2-135M-Instruct.Q4_1.gguf"))


def run(*args, **kw):
    t0 = time.time()
    p = subprocess.run(list(args), capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: exit {p.returncode}\n{p.stderr}")
    return p, time.time() - t0


def timed_rss(*args):
    """Wall seconds and peak RSS (KiB) of a command, from /usr/bin/time -v."""
    p, _ = run("/usr/bin/time", "-v", *args)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", p.stderr)
    h, m, s = wall.groups()
    seconds = (int(h) if h else 0) * 3600 + int(m) * 60 + float(s)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    return seconds, rss


def measure(slm, work, name, old, new, changed_desc):
    u = os.path.join(work, name + ".slmdelta")
    out = os.path.join(work, name + ".applied.slm")
    for f in (u, out):
        if os.path.exists(f):
            os.remove(f)
    p, t_delta = run(slm, "delta", old, new, "-o", u, "--json")
    d = json.loads(p.stdout)
    diff = json.loads(run(slm, "diff", old, new, "--json")[0].stdout)
    assert diff["update_bytes"] == os.path.getsize(u), (diff["update_bytes"], os.path.getsize(u))
    t_apply, rss = timed_rss(slm, "apply", old, u, "-o", out)
    with open(new, "rb") as a, open(out, "rb") as b:
        same = a.read() == b.read()
    z = os.path.join(work, name + ".new.slm.zst")
    # zstd -19 of 136 MB takes minutes: cached by NEW's content (the result is deterministic).
    import hashlib
    cache_path = os.path.join(work, "zstd19_cache.json")
    cache = json.load(open(cache_path)) if os.path.exists(cache_path) else {}
    with open(new, "rb") as fh:
        key = hashlib.sha256(fh.read()).hexdigest()
    if key not in cache:
        _, t = run("zstd", "-19", "-q", "-f", "-T1", new, "-o", z)
        cache[key] = [os.path.getsize(z), t]
        os.remove(z)
        json.dump(cache, open(cache_path, "w"))
    zsize, t_zstd = cache[key]
    r = {"case": name, "changed": changed_desc, "full_file": os.path.getsize(new), "delta": os.path.getsize(u),
         "changed_segment_bytes": d["changed_segment_bytes"], "copied_bytes": d["copied_bytes"],
         "xor_bytes": d["xor_bytes"], "literal_bytes": d["literal_bytes"], "delta_seconds": round(t_delta, 2),
         "add_bytes": d["add_bytes"], "zstd19_new": zsize, "zstd19_seconds": round(t_zstd, 2),
         "apply_seconds": round(t_apply, 2),
         "apply_peak_rss_kib": rss, "byte_identical": same}
    os.remove(out)
    print(json.dumps(r), flush=True)
    return r


def rank8_update(w, rng, rel=0.01, rank=8):
    u = rng.standard_normal((w.shape[0], rank)).astype(np.float32)
    v = rng.standard_normal((rank, w.shape[1])).astype(np.float32)
    delta = u @ v
    delta *= rel * np.linalg.norm(w) / np.linalg.norm(delta)
    return (w + delta).astype(np.float32)


def main():
    slm, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    results = []

    # (a) recipe change in a few layers, from the GGUF (tokenizer and chat template in the header).
    a_old, a_new = os.path.join(work, "a_old.slm"), os.path.join(work, "a_new.slm")
    changed = ["model.layers.3.mlp.down_proj.weight", "model.layers.10.self_attn.q_proj.weight",
               "model.layers.20.mlp.up_proj.weight"]
    run(slm, "convert", GGUF, "-o", a_old, "--recipe", "int8", "--force")
    rules = sum((["--rule", f"{n}=int4"] for n in changed), [])
    run(slm, "convert", GGUF, "-o", a_new, "--recipe", "int8", *rules, "--force")
    results.append(measure(slm, work, "a_recipe", a_old, a_new, "int8 -> int4 in 3 tensors"))

    # (b) rank-8 update, ||dW||_F = 1 % ||W||_F, on every q/k/v/o projection; both sides int8.
    f32, base_st, tuned_st = (os.path.join(work, n) for n in ("fp32.slm", "base.safetensors", "tuned.safetensors"))
    run(slm, "convert", GGUF, "-o", f32, "--recipe", "fp32", "--force")
    if os.path.exists(base_st):
        os.remove(base_st)
    run(slm, "export", f32, "-o", base_st)
    tensors = load_file(base_st)
    with open(base_st, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        metadata = json.loads(fh.read(n)).get("__metadata__", {})
    rng = np.random.default_rng(0)
    touched = 0
    for name in sorted(tensors):
        if re.search(r"self_attn\.[qkvo]_proj\.weight$", name):
            tensors[name] = rank8_update(tensors[name], rng)
            touched += 1
    save_file(tensors, tuned_st, metadata=metadata)
    b_old, b_new = os.path.join(work, "b_old.slm"), os.path.join(work, "b_new.slm")
    run(slm, "convert", base_st, "-o", b_old, "--recipe", "int8", "--force")
    run(slm, "convert", tuned_st, "-o", b_new, "--recipe", "int8", "--force")
    results.append(measure(slm, work, "b_rank8", b_old, b_new, f"rank-8, 1 % Frobenius, {touched} attention projections"))

    if len(sys.argv) > 3:
        text = sys.argv[3]
        cal = {}
        for split in ("calibration", "eval"):
            cal[split] = os.path.join(work, f"cal_{split}.bin")
            run(slm, "calibrate", f32, "--text", text, "--split", split, "--max-tokens", "4096", "-o", cal[split],
                "--force")
        c_old, c_new = os.path.join(work, "c_old.slm"), os.path.join(work, "c_new.slm")
        rule = ["--rule", "*_proj.weight=int4:search=weighted"]
        run(slm, "convert", GGUF, "-o", c_old, "--recipe", "w4", *rule, "--calibration", cal["calibration"], "--force")
        run(slm, "convert", GGUF, "-o", c_new, "--recipe", "w4", *rule, "--calibration", cal["eval"], "--force")
        results.append(measure(slm, work, "c_recal", c_old, c_new, "w4 weighted, recalibrated on other text"))

    with open(os.path.join(work, "delta_measurements.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    mib = lambda b: f"{b / 2**20:.2f} MiB"
    print("\n| case | full file | delta | delta / file | `zstd -19` of NEW | changed segments | apply time | apply peak RSS | identical |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['case']} ({r['changed']}) | {mib(r['full_file'])} | {mib(r['delta'])} | "
              f"{100 * r['delta'] / r['full_file']:.1f} % | {mib(r['zstd19_new'])} | {mib(r['changed_segment_bytes'])} | "
              f"{r['apply_seconds']:.2f} s | {r['apply_peak_rss_kib'] / 1024:.1f} MiB | {r['byte_identical']} |")


if __name__ == "__main__":
    main()
