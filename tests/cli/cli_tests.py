#!/usr/bin/env python3
"""End-to-end tests of the slm-compress command line: cli_tests.py BINARY TEST_NAME [EMULATOR...].

A cross build runs the binary behind its emulator (the trailing arguments, e.g. qemu-aarch64 -L
/usr/aarch64-linux-gnu), and every timeout is multiplied by SLMC_CLI_TIMEOUT_SCALE (emulation is
10-50x slower).

Each test_* function gets a Ctx (the binary, a fresh temporary directory) and raises
AssertionError on failure or Skip when the real models are absent (exit code 77, which ctest
reports as skipped)."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

SKIP_CODE = 77


class Skip(Exception):
    pass


TIMEOUT_SCALE = float(os.environ.get("SLMC_CLI_TIMEOUT_SCALE", "1"))


class Ctx:
    def __init__(self, binary, emulator, tmp):
        self.binary = binary
        self.cmd = [*emulator, binary]  # what to run: the binary, behind its emulator if any
        self.tmp = tmp

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def run(self, *args, expect=0, env=None):
        p = subprocess.run([*self.cmd, *args], capture_output=True, text=True,
                           timeout=240 * TIMEOUT_SCALE, env=env)
        if expect is not None and p.returncode != expect:
            raise AssertionError(f"{' '.join(args)}: exit {p.returncode}, expected {expect}\n"
                                 f"stdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}")
        return p

    def json(self, *args, expect=0):
        p = self.run(*args, "--json", expect=expect)
        return json.loads(p.stdout)

    def synth(self, name="model", **kw):
        out = self.path(name)
        opts = {"dim": 64, "hidden": 160, "layers": 2, "vocab": 256}
        opts.update(kw)
        args = ["synth", "-o", out]
        for k, v in opts.items():
            args += [f"--{k}", str(v)]
        self.run(*args)
        return out


def models_dir():
    d = os.environ.get("SLMC_MODELS_DIR") or os.environ.get("SLMC_DEFAULT_MODELS_DIR", "")
    if not d or not os.path.exists(os.path.join(d, "stories260K", "stories260K.bin")):
        raise Skip(f"real models not found in '{d}' (set SLMC_MODELS_DIR)")
    return d


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


# --- convert ---------------------------------------------------------------------------------

def test_convert_json_report(c):
    m = c.synth()
    r = c.json("convert", m, "-o", c.path("out.slm"))
    check(r["gates"]["passed"], r["gates"])
    names = {t["name"] for t in r["tensors"]}
    check("model.layers.0.mlp.up_proj.weight" in names, names)
    for t in r["tensors"]:
        for key in ("name", "shape", "encoding", "bytes_in", "bytes_out", "bits_per_weight", "rel_error",
                    "sqnr_db", "sparsity"):
            check(key in t, f"{key} missing in {t}")
    up = next(t for t in r["tensors"] if t["name"].endswith("mlp.up_proj.weight"))
    check(up["encoding"].startswith("int4:group=32"), up)
    check(abs(up["bits_per_weight"] - 4.5) < 1e-9, up)  # int4 g32 fp16 scales, K = 64
    check(0 < up["rel_error"] < 0.3, up)
    norm = next(t for t in r["tensors"] if t["name"].endswith("input_layernorm.weight"))
    check(norm["encoding"] == "fp32" and norm["rel_error"] == 0, norm)
    total = r["total"]
    check(total["bytes_out"] == sum(t["bytes_out"] for t in r["tensors"]), total)
    check(total["file_size"] == os.path.getsize(c.path("out.slm")), total)
    check(total["bytes_in"] > 4 * total["bytes_out"], total)


def test_convert_reproducible(c):
    m = c.synth()
    c.run("convert", m, "-o", c.path("a.slm"), "--threads", "1")
    c.run("convert", m, "-o", c.path("b.slm"), "--threads", "2")
    with open(c.path("a.slm"), "rb") as a, open(c.path("b.slm"), "rb") as b:
        check(a.read() == b.read(), "same input + recipe must give byte-identical files")


def test_dry_run_predicts_the_real_size(c):
    m = c.synth()
    for recipe in ("w4", "int8", "w8-bitmask50", "w4-2:4"):
        d = c.json("convert", m, "--recipe", recipe, "--dry-run")
        check(d["dry_run"] and d["output"] is None, d)
        r = c.json("convert", m, "--recipe", recipe, "-o", c.path(recipe + ".slm"))
        check(d["total"]["file_size"] == os.path.getsize(c.path(recipe + ".slm")), (recipe, d["total"]))
        check(d["total"]["bytes_out"] == r["total"]["bytes_out"], recipe)
    check(sorted(os.listdir(c.tmp)) == sorted(["model", "w4.slm", "int8.slm", "w8-bitmask50.slm", "w4-2:4.slm"]),
          os.listdir(c.tmp))


def test_dry_run_writes_nothing_and_counts_duplicates(c):
    # Identical tensors are stored once (deduplicated): the dry run's layout must count that too,
    # and it must need no writable directory at all.
    vals = [((i * 37) % 101 - 50) / 7.0 for i in range(64 * 96)]
    src = c.path("dup.safetensors")
    write_safetensors(src, {"a.weight": ([64, 96], vals), "b.weight": ([64, 96], vals),
                            "c.weight": ([64, 96], vals[::-1])})
    env = dict(os.environ, TMPDIR=c.path("no-such-dir"))
    for recipe in ("fp32", "int8", "w4", "w8-bitmask50"):
        p = c.run("convert", src, "--recipe", recipe, "--dry-run", "--json", env=env)
        d = json.loads(p.stdout)
        c.run("convert", src, "--recipe", recipe, "-o", c.path("dup.slm"), "--force")
        check(d["total"]["file_size"] == os.path.getsize(c.path("dup.slm")), (recipe, d["total"]))
    check(sorted(os.listdir(c.tmp)) == ["dup.safetensors", "dup.slm"], os.listdir(c.tmp))


def test_size_gate_trips_and_passes(c):
    m = c.synth()
    r = c.json("convert", m, "--dry-run")
    size = r["total"]["bytes_out"]
    p = c.run("convert", m, "-o", c.path("x.slm"), "--max-size", str(size - 1), expect=4)
    check("exceeds --max-size" in p.stderr, p.stderr)
    check(not os.path.exists(c.path("x.slm")), "a failed gate must leave no output")
    c.run("convert", m, "-o", c.path("x.slm"), "--max-size", str(size))
    check(os.path.exists(c.path("x.slm")), "passing gate writes the file")


def test_error_gate_trips_and_passes(c):
    m = c.synth()
    r = c.json("convert", m, "--max-rel-error", "0.01", "--dry-run", expect=4)
    check(not r["gates"]["passed"] and any("max-rel-error" in f for f in r["gates"]["failures"]), r["gates"])
    r = c.json("convert", m, "--recipe", "int8", "--max-rel-error", "0.05", "--dry-run")
    check(r["gates"]["passed"], r["gates"])


def test_target_size_chooses_within_budget(c):
    m = c.synth()
    small = c.json("convert", m, "--rule", "*.weight=int4:group=32", "--dry-run")["total"]["bytes_out"]
    big = c.json("convert", m, "--rule", "*.weight=int8", "--dry-run")["total"]["bytes_out"]
    target = (small + big) // 2
    r = c.json("convert", m, "--rule", "*.weight=int4:group=32|int8", "--target-size", str(target), "-o", c.path("t.slm"))
    check(small <= r["total"]["bytes_out"] <= target, (small, r["total"], target))
    kinds = {t["encoding"].split(":")[0] for t in r["tensors"] if t["name"].endswith("proj.weight")}
    check(kinds == {"int4", "int8"}, kinds)  # a mix: some tensors upgraded, not all
    p = c.run("convert", m, "--rule", "*.weight=int4|int8", "--target-size", str(small - 100), "-o",
              c.path("u.slm"), expect=4)
    check("smallest possible size" in p.stderr, p.stderr)
    check(not os.path.exists(c.path("u.slm")), "no output on a failed target")


def test_usage_errors_exit_2_and_list_options(c):
    m = c.synth()
    p = c.run("convert", m, "-o", c.path("x.slm"), "--rule", "*=int4:colour=red", expect=2)
    check("valid keys: group, sym, search" in p.stderr, p.stderr)
    p = c.run("convert", m, "-o", c.path("x.slm"), "--recipe", "nope", expect=2)
    check("w4" in p.stderr and "int8" in p.stderr, p.stderr)
    p = c.run("convert", m, "-o", c.path("x.slm"), "--rule", "*=int4:group=48", expect=2)
    check("16, 32, 64, 128, 256" in p.stderr, p.stderr)
    c.run("convert", "--bogus-flag", expect=2)
    c.run("frobnicate", expect=2)
    c.run("convert", m, expect=2)  # neither -o nor --dry-run
    c.run("convert", m, "-o", c.path("x.slm"), "--max-size", "lots", expect=2)
    check(not os.path.exists(c.path("x.slm")), "usage errors write nothing")


def test_bad_input_exits_3_and_leaves_nothing(c):
    p = c.run("convert", c.path("missing.safetensors"), "-o", c.path("x.slm"), expect=3)
    check("missing.safetensors" in p.stderr, p.stderr)
    bad = c.path("bad.safetensors")
    with open(bad, "wb") as f:
        f.write((10**6).to_bytes(8, "little") + b"{\"w\": 1}")
    p = c.run("convert", bad, "-o", c.path("x.slm"), expect=3)
    check("bad.safetensors" in p.stderr, p.stderr)
    c.run("inspect", bad, expect=3)
    check(not os.path.exists(c.path("x.slm")), "no output on bad input")
    check(sorted(os.listdir(c.tmp)) == ["bad.safetensors"], os.listdir(c.tmp))  # no temporary files either


def test_weighted_search_needs_calibration(c):
    m = c.synth()
    p = c.run("convert", m, "--rule", "*proj.weight=int4:search=weighted", "--dry-run", expect=2)
    check("--calibration" in p.stderr, p.stderr)
    # A calibration file for every linear layer (uniform importance) makes it work.
    src = c.json("convert", m, "--recipe", "fp32", "--dry-run")
    tensors = {}
    for t in src["tensors"]:
        if t["name"].endswith("proj.weight"):
            tensors[t["name"]] = {"mean_sq": [1.0] * t["shape"][1], "count": 100}
    cal = c.path("cal.json")
    with open(cal, "w") as f:
        json.dump({"format": "slmc-calibration", "version": 1, "tensors": tensors}, f)
    r = c.json("convert", m, "--rule", "*proj.weight=int4:search=weighted", "--calibration", cal, "--dry-run")
    check(any("search=weighted" in t["encoding"] for t in r["tensors"]), "weighted applied")
    with open(cal, "w") as f:
        f.write("{\"format\": \"slmc-calibration\", \"version\": 1, \"tensors\": {\"x\": {\"mean_sq\": [-1], \"count\": 1}}}")
    p = c.run("convert", m, "--calibration", cal, "--dry-run", expect=3)
    check("mean_sq[0]" in p.stderr, p.stderr)


def test_profiles(c):
    m = c.synth()
    info = c.json("info")
    check({"x86-avx2", "arm64-dotprod", "cortex-a53", "cortex-a72"} <= set(info["profiles"]), info["profiles"])
    r = c.json("convert", m, "--profile", "cortex-a53", "-o", c.path("a53.slm"))
    up = next(t for t in r["tensors"] if t["name"].endswith("mlp.up_proj.weight"))
    check(up["encoding"].startswith("int8") and "layout=i4" in up["encoding"], up)
    meta = c.json("inspect", c.path("a53.slm"))["metadata"]
    check(meta["slmc.profile.name"] == "cortex-a53", meta)
    prof = c.path("tiny.json")
    with open(prof, "w") as f:
        json.dump({"format": "slmc-profile", "version": 1, "name": "tiny", "memory_budget_bytes": 1000,
                   "recipe": "w4"}, f)
    c.run("convert", m, "--profile", prof, "-o", c.path("tiny.slm"), expect=4)
    with open(prof, "w") as f:
        json.dump({"format": "slmc-profile", "version": 1, "isa": "sve2"}, f)
    p = c.run("convert", m, "--profile", prof, "-o", c.path("tiny.slm"), expect=2)
    check("sve2" in p.stderr and "neon_dotprod" in p.stderr, p.stderr)


# --- inspect, verify, diff, export, bench ------------------------------------------------------

def test_inspect_json(c):
    m = c.synth()
    c.run("convert", m, "-o", c.path("m.slm"), "--metadata", "release=2026.11", "--metadata", "team=edge")
    j = c.json("inspect", c.path("m.slm"))
    check(j["format_version"].startswith("1."), j["format_version"])
    check(j["producer"]["name"] == "slm-compress", j["producer"])
    check(len(j["sources"]) == 1 and len(j["sources"][0]["sha256"]) == 64, j["sources"])
    check(j["metadata"]["release"] == "2026.11" and j["metadata"]["team"] == "edge", j["metadata"])
    check(j["architecture"]["general.architecture"] == "llama", j["architecture"])
    check(j["recipe"]["name"] == "w4", j["recipe"])
    check(j["tensor_count"] == len(j["tensors"]) == 2 * 9 + 2, j["tensor_count"])
    check(any(e["name"].startswith("int4") for e in j["encodings"]), j["encodings"])
    human = c.run("inspect", c.path("m.slm")).stdout
    check("sha256" in human and "model.layers.1.mlp.down_proj.weight" in human, human)


def test_verify_detects_corruption(c):
    m = c.synth()
    out = c.path("m.slm")
    c.run("convert", m, "-o", out)
    j = c.json("verify", out, "--source", m)
    check(j["ok"] and j["source"]["tensors_compared"] == 20, j)
    data = bytearray(open(out, "rb").read())
    data[len(data) - 100] ^= 0x40  # a byte in the last data segment
    bad = c.path("bad.slm")
    open(bad, "wb").write(bytes(data))
    p = c.run("verify", bad, expect=5)
    check("checksum" in p.stderr.lower(), p.stderr)
    j = c.json("verify", bad, expect=5)
    check(not j["ok"] and not j["checksums"]["ok"], j)
    open(bad, "wb").write(bytes(data[:1000]))  # truncated: structurally invalid
    c.run("verify", bad, expect=3)
    # Statistics check against a different source: recomputed errors disagree.
    other = c.synth("other", seed=2)
    p = c.run("verify", out, "--source", other, expect=5)
    check("recorded rel_error" in p.stderr, p.stderr)


def test_diff_and_export(c):
    m = c.synth()
    c.run("convert", m, "-o", c.path("a.slm"))
    c.run("convert", m, "-o", c.path("b.slm"), "--rule", "*.layers.1.mlp.*=int8")
    d = c.json("diff", c.path("a.slm"), c.path("b.slm"))
    check(sorted(d["changed"]) == sorted(f"model.layers.1.mlp.{p}_proj.weight" for p in ("gate", "up", "down")), d)
    check(d["added"] == [] and d["removed"] == [] and d["unchanged"] == 17, d)
    check(0 < d["update_bytes"] < os.path.getsize(c.path("b.slm")), d)
    same = c.json("diff", c.path("a.slm"), c.path("a.slm"))
    check(same["changed_segment_bytes"] == 0 and same["changed"] == [], same)
    check(0 < same["update_bytes"] < 4096, same)  # the delta's preamble, op table and header
    # export -> convert fp32 -> the weights are exactly the decoded ones: error 0 against the export.
    c.run("export", c.path("a.slm"), "-o", c.path("a.safetensors"))
    r = c.json("convert", c.path("a.safetensors"), "--recipe", "fp32", "-o", c.path("a32.slm"))
    check(all(t["rel_error"] == 0 for t in r["tensors"]), "fp32 is exact")
    # The recorded statistics are against the original weights, so checking them against the decoded
    # export must fail (the export has no quantization error left to find).
    v = c.json("verify", c.path("a.slm"), "--source", c.path("a.safetensors"), expect=5)
    check(not v["ok"] and v["source"]["mismatches"], v)
    c.run("export", c.path("a.slm"), "-o", c.path("h.safetensors"), "--dtype", "fp16")
    check(os.path.getsize(c.path("h.safetensors")) < os.path.getsize(c.path("a.safetensors")), "fp16 is smaller")
    c.run("export", c.path("a.slm"), "-o", c.path("x.safetensors"), "--dtype", "int3", expect=2)


def test_bench_file_and_shape(c):
    m = c.synth()
    c.run("convert", m, "-o", c.path("m.slm"))
    b = c.json("bench", c.path("m.slm"), "--min-time", "0.01", "--threads", "1")
    check(len(b["tensors"]) == 2 * 7 + 1, len(b["tensors"]))
    for t in b["tensors"]:
        check(t["seconds"] > 0 and t["weight_GBps"] > 0 and t["GFLOPs"] > 0 and t["speedup_vs_fp32"] > 0, t)
    s = c.json("bench", "--shape", "256x512", "--encoding", "int8", "--batch", "4", "--min-time", "0.01")
    check(s["tensors"][0]["shape"] == [256, 512] and s["batch"] == 4, s)
    c.run("bench", "--shape", "256by512", expect=2)
    c.run("bench", expect=2)


def test_bench_e2e(c):
    d = models_dir()
    m = c.path("s.slm")
    c.run("convert", os.path.join(d, "stories260K", "stories260K.bin"), "-o", m, "--recipe", "int8")
    b = c.json("bench", m, "--e2e", "--prompt-tokens", "48", "--gen-tokens", "8", "--repetitions", "3",
               "--threads", "1")
    for key in ("prefill", "decode"):
        s = b[key]
        check(len(s["samples"]) == 3 and all(v > 0 for v in s["samples"]), s)
        check(s["min"] <= s["median"] <= s["max"] and s["stddev"] >= 0, s)
        check(s["min"] == min(s["samples"]) and s["max"] == max(s["samples"]), s)
    check(b["prefill_tokens_per_s"] == b["prefill"]["median"] > 0, b)
    check(b["decode_tokens_per_s"] == b["decode"]["median"] > 0, b)
    check(b["prompt_tokens"] == 48 and b["gen_tokens"] == 8 and b["repetitions"] == 3 and b["threads"] == 1, b)
    check(b["architecture"] == "llama" and b["parameters"] > 200000 and b["tensor_bytes"] > 0, b)
    check(b["cpu"]["brand"] is not None and "isa" in b and b["kernel_isa"], b)
    check(b["isa"] in c.json("info")["isa"]["runnable"], b)
    # Decode only: no prefill figures at all.
    g = c.json("bench", m, "--e2e", "--prompt-tokens", "0", "--gen-tokens", "4", "--repetitions", "1")
    check("prefill_tokens_per_s" not in g and g["decode_tokens_per_s"] > 0, g)
    # Human output names the tests as llama-bench does.
    p = c.run("bench", m, "--e2e", "--prompt-tokens", "16", "--gen-tokens", "4", "--repetitions", "1")
    check("pp16" in p.stdout and "tg4" in p.stdout and "cpu" in p.stdout, p.stdout)
    # Bad arguments are usage errors (exit 2) that name the option; a non-model file is exit 3.
    for bad in (["--prompt-tokens", "-1"], ["--gen-tokens", "-3"], ["--prompt-tokens", "0", "--gen-tokens", "0"],
                ["--repetitions", "0"], ["--batch", "4"], ["--shape", "64x64"], ["--prompt-tokens", "100000"],
                ["--act", "int3"]):
        p = c.run("bench", m, "--e2e", *bad, expect=2)
        check("error" in p.stderr, p.stderr)
    c.run("bench", "--e2e", expect=2)
    c.run("bench", c.path("missing.slm"), "--e2e", expect=3)
    c.run("convert", c.synth(), "-o", c.path("m.slm"))
    c.run("bench", c.path("m.slm"), "--e2e", "--prompt-tokens", "8", "--gen-tokens", "2", "--repetitions", "1")


def test_info_and_isa_override(c):
    j = c.json("info")
    check("scalar" in j["isa"]["compiled"] and j["isa"]["active"] in j["isa"]["runnable"], j)
    env = dict(os.environ, SLMC_ISA="scalar")
    p = subprocess.run([*c.cmd, "info", "--json"], capture_output=True, text=True, env=env)
    check(p.returncode == 0 and json.loads(p.stdout)["isa"]["active"] == "scalar", p.stdout)
    env["SLMC_ISA"] = "avx9000"
    p = subprocess.run([*c.cmd, "info"], capture_output=True, text=True, env=env)
    check(p.returncode == 2 and "valid" in p.stderr, p.stderr)
    p = c.run("--help")
    check("Exit codes" in p.stdout, p.stdout)


# --- real models -------------------------------------------------------------------------------

def test_real_stories260k_every_subcommand(c):
    d = models_dir()
    src = os.path.join(d, "stories260K", "stories260K.bin")
    r = c.json("convert", src, "-o", c.path("s.slm"), "--recipe", "w4")
    names = {t["name"] for t in r["tensors"]}
    check("model.layers.4.mlp.down_proj.weight" in names and "model.embed_tokens.weight" in names, names)
    q = next(t for t in r["tensors"] if t["name"] == "model.layers.0.self_attn.q_proj.weight")
    check(q["shape"] == [64, 64] and q["encoding"].startswith("int4"), q)
    i = c.json("inspect", c.path("s.slm"))
    check(i["architecture"]["llama.rope.layout"] == "interleaved", i["architecture"])
    check(i["architecture"]["llama.attention.head_count_kv"] in (4, "4"), i["architecture"])
    check(c.json("verify", c.path("s.slm"), "--source", src)["ok"], "verify")
    check(len(c.json("bench", c.path("s.slm"), "--min-time", "0.005", "--threads", "1")["tensors"]) >= 35, "bench")
    c.run("convert", src, "-o", c.path("s8.slm"), "--recipe", "int8")
    check(c.json("diff", c.path("s.slm"), c.path("s8.slm"))["changed"], "diff")
    c.run("export", c.path("s.slm"), "-o", c.path("s.safetensors"))


def test_real_stories260k_calibrate_gram(c):
    d = models_dir()
    src = os.path.join(d, "stories260K", "stories260K.bin")
    tok = os.path.join(d, "stories260K", "tok512.bin")
    text = os.path.join(d, "tinystories-valid-excerpt", "tinystories_val.txt")
    c.run("convert", src, "-o", c.path("s32.slm"), "--recipe", "fp32")
    cal = c.path("cal.json")
    r = c.json("calibrate", c.path("s32.slm"), "--tokenizer", tok, "--text", text, "--max-tokens", "2000",
               "--gram", "-o", cal)
    check(r["tensors"] == 35 and r["tokens"] == 2000, r)
    with open(cal) as f:
        stats = json.load(f)
    down = stats["tensors"]["model.layers.0.mlp.down_proj.weight"]
    check(len(down["mean_sq"]) == 172 and len(down["gram"]) == 172 * 173 // 2, len(down.get("gram", [])))
    check(abs(down["gram"][0] - down["mean_sq"][0]) <= 1e-5 * down["mean_sq"][0], (down["gram"][0], down["mean_sq"][0]))
    rule = "*_proj.weight=int4:search=weighted"
    r = c.json("convert", src, "-o", c.path("w.slm"), "--recipe", "fp32", "--rule", rule, "--calibration", cal)
    check(c.json("verify", c.path("w.slm"), "--source", src)["ok"], "verify")
    e = c.json("eval", c.path("w.slm"), "--tokenizer", tok, "--text", text, "--max-tokens", "1000",
               "--reference", c.path("s32.slm"), "--decode-tokens", "0")
    check(e["tokens"] == 1000 and 0 < e["kl"] < 0.5 and e["top1_agreement"] > 0.7, e)
    # A Gram matrix of the wrong size is an input error that names the tensor.
    down["gram"] = down["gram"][:-1]
    with open(cal, "w") as f:
        json.dump(stats, f)
    p = c.run("convert", src, "--rule", rule, "--calibration", cal, "--dry-run", expect=3)
    check("down_proj" in p.stderr and "gram" in p.stderr, p.stderr)


def test_calibration_binary_format(c):
    """calibrate writes the binary statistics for any name not ending in .json; convert reads
    either form to the same bytes; the reader refuses corrupted, truncated and inflated files
    (generated here) with exit 3 naming the problem, before allocating for them."""
    import struct
    d = models_dir()
    src = os.path.join(d, "stories260K", "stories260K.bin")
    tok = os.path.join(d, "stories260K", "tok512.bin")
    text = os.path.join(d, "tinystories-valid-excerpt", "tinystories_val.txt")
    c.run("convert", src, "-o", c.path("s32.slm"), "--recipe", "fp32")
    base = ("calibrate", c.path("s32.slm"), "--tokenizer", tok, "--text", text, "--max-tokens", "1500", "--gram")
    rj = c.json(*base, "-o", c.path("cal.json"))
    rb = c.json(*base, "-o", c.path("cal.bin"))
    check(rj["format"] == "json" and rb["format"] == "binary" and rb["bytes"] < rj["bytes"] / 2, (rj, rb))
    blob = open(c.path("cal.bin"), "rb").read()
    check(blob[:8] == b"SLMCCAL1" and struct.unpack_from("<II", blob, 8) == (1, 0), blob[:16])
    check(struct.unpack_from("<Q", blob, len(blob) - 8)[0] == xxh64(blob[:-8]), "xxh64 trailer")
    # The first tensor as the format says: header, padded name, mean_sq, upper triangle.
    count = struct.unpack_from("<Q", blob, 16)[0]
    nb, fl, k, n = struct.unpack_from("<IIQd", blob, 24)
    name = blob[48:48 + nb].decode()
    stats = json.load(open(c.path("cal.json")))
    check(count == len(stats["tensors"]) == 35 and fl == 1 and n == stats["tensors"][name]["count"], (count, fl, n))
    at = 48 + (nb + 3) // 4 * 4
    mean_sq = struct.unpack_from(f"<{k}f", blob, at)
    ref = stats["tensors"][name]["mean_sq"]
    check(len(ref) == k and all(abs(a - b) <= 1e-6 * max(1.0, abs(b)) for a, b in zip(mean_sq, ref)), name)
    rule = "*_proj.weight=int4:search=weighted"
    outs = []
    for cal in ("cal.json", "cal.bin"):
        out = c.path(cal + ".slm")
        c.run("convert", src, "-o", out, "--recipe", "fp32", "--rule", rule, "--calibration", c.path(cal))
        outs.append(open(out, "rb").read())
    check(outs[0] == outs[1], "JSON and binary statistics convert to different files")

    def refused(data, *words):
        bad = c.path("bad.bin")
        with open(bad, "wb") as f:
            f.write(data)
        p = c.run("convert", src, "--rule", rule, "--calibration", bad, "--dry-run", expect=3)
        for w in words:
            check(w in p.stderr, (w, p.stderr))

    def sealed(body):
        return body + struct.pack("<Q", xxh64(body))

    flipped = bytearray(blob)
    flipped[at + 5] ^= 0x40
    refused(bytes(flipped), "checksum")
    refused(blob[:len(blob) // 2], "checksum")
    refused(blob[:20], "truncated")
    body = bytearray(blob[:-8])
    struct.pack_into("<Q", body, 32, 1 << 40)  # K of the first tensor: far beyond the file
    refused(sealed(bytes(body)), "do not fit", name)
    body = bytearray(blob[:-8])
    struct.pack_into("<Q", body, 16, 1 << 60)  # tensor count
    refused(sealed(bytes(body)), "tensor count")
    body = bytearray(blob[:-8])
    struct.pack_into("<f", body, at, float("nan"))
    refused(sealed(bytes(body)), "mean_sq[0]", name)
    refused(sealed(bytes(blob[:-8]) + b"xx"), "after the last tensor")
    body = bytearray(blob[:-8])
    struct.pack_into("<I", body, 8, 2)
    refused(sealed(bytes(body)), "version 2")


def test_real_gpt2_transposed_and_sparse(c):
    d = models_dir()
    src = os.path.join(d, "capp-gpt2-236K")
    r = c.json("convert", src, "-o", c.path("g.slm"), "--recipe", "w8-2:4")
    fc = next(t for t in r["tensors"] if t["name"].endswith("h.0.mlp.c_fc.weight"))
    check(fc["shape"] == [256, 64] and fc["transposed"], fc)  # Conv1D [in, out] -> [out, in]
    check("pattern=2:4" in fc["encoding"] and abs(fc["sparsity"] - 0.5) < 0.02, fc)
    check(c.json("verify", c.path("g.slm"), "--source", src)["ok"], "verify")
    r = c.json("convert", src, "--recipe", "int8", "--max-rel-error", "0.02", "--dry-run")
    check(r["gates"]["passed"], r["gates"])


# --- hostile inputs (the hardening issue): one generator per class, nothing left behind ---------------

def write_safetensors(path, tensors, metadata=None, raw_metadata=None):
    """A minimal safetensors file: tensors = {name: (shape, list of floats)}."""
    import struct
    header, blob = {}, b""
    for name, (shape, values) in tensors.items():
        data = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    text = json.dumps(header)
    if metadata is not None:
        text = text[:-1] + ', "__metadata__": ' + json.dumps(metadata) + "}"
    if raw_metadata is not None:
        text = text[:-1] + ', "__metadata__": ' + raw_metadata + "}"
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text.encode() + blob)


def deep_json(levels):
    return "[" * levels + "]" * levels


def leftovers(c, keep):
    extra = sorted(set(os.listdir(c.tmp)) - set(keep))
    check(not extra, f"files left behind: {extra}")


def test_hostile_fifo_inputs_fail_at_once(c):
    m = c.synth()
    c.run("convert", m, "-o", c.path("m.slm"))
    fifo = c.path("fifo")
    os.mkfifo(fifo)
    cases = [("convert", fifo, "-o", c.path("o.slm")), ("inspect", fifo), ("tokenize", fifo, "--prompt", "x"),
             ("convert", m, "-o", c.path("o.slm"), "--calibration", fifo),
             ("convert", m, "-o", c.path("o.slm"), "--recipe", fifo),
             ("convert", m, "-o", c.path("o.slm"), "--profile", fifo),
             ("eval", c.path("m.slm"), "--text", fifo, "--tokenizer", fifo),
             ("tokenize", c.path("m.slm"), "--text", fifo)]
    for args in cases:
        p = c.run(*args, expect=None)  # Ctx.run times out (and fails) if anything blocks
        check(p.returncode in (2, 3) and "FIFO" in p.stderr, (args, p.returncode, p.stderr))
    leftovers(c, ["model", "m.slm", "fifo"])


def test_hostile_deep_json_is_refused_not_a_crash(c):
    deep = deep_json(100000)
    m = c.synth()
    # safetensors __metadata__, config.json beside a model, tokenizer.json beside a model.
    write_safetensors(c.path("meta.safetensors"), {"w": ([2, 2], [1, 2, 3, 4])}, raw_metadata='{"x": "' + "y" + '"}')
    write_safetensors(c.path("deep.safetensors"), {"w": ([2, 2], [1, 2, 3, 4])}, raw_metadata='{"x": ' + deep + "}")
    p = c.run("convert", c.path("deep.safetensors"), "-o", c.path("o.slm"), expect=3)
    check("nested deeper" in p.stderr, p.stderr)
    for name in ("config.json", "tokenizer.json"):
        d = c.path("dir_" + name)
        shutil.copytree(m, d)
        with open(os.path.join(d, name), "w") as fh:
            fh.write('{"model_type": "llama", "x": ' + deep + "}")
        p = c.run("convert", d, "-o", c.path("o.slm"), expect=3)
        check("nested deeper" in p.stderr, (name, p.stderr))
    for flag, code in (("--calibration", 3), ("--recipe", 2), ("--profile", 2)):
        f = c.path("deep" + flag.replace("-", "_") + ".json")
        with open(f, "w") as fh:
            fh.write('{"format": "x", "y": ' + deep + "}")
        p = c.run("convert", m, "-o", c.path("o.slm"), flag, f, expect=code)
        check("nested deeper" in p.stderr, (flag, p.stderr))
    c.run("convert", m, "-o", c.path("ok.slm"))
    with open(c.path("deep_ids.json"), "w") as fh:
        fh.write(deep)
    p = c.run("tokenize", c.path("ok.slm"), "--decode", "--text", c.path("deep_ids.json"), expect=None)
    check(p.returncode in (2, 3), (p.returncode, p.stderr))
    check(not os.path.exists(c.path("o.slm")), "no output after a refused input")


def test_hostile_output_paths(c):
    m = c.synth()
    c.run("convert", m, "-o", c.path("m.slm"))
    before = open(c.path("m.slm"), "rb").read()
    # The output is the input (directly, or the model file inside the input directory).
    p = c.run("convert", c.path("m.slm"), "-o", c.path("m.slm"), expect=None)
    check(p.returncode in (2, 3), p.stderr)
    p = c.run("convert", m, "-o", os.path.join(m, "model.safetensors"), expect=2)
    check("is the input" in p.stderr, p.stderr)
    p = c.run("export", c.path("m.slm"), "-o", c.path("m.slm"), expect=2)
    check("is the input" in p.stderr, p.stderr)
    # A symlink planted at the output: refused; with --force the link is replaced, not its target.
    with open(c.path("victim"), "w") as fh:
        fh.write("precious")
    os.symlink(c.path("victim"), c.path("link.slm"))
    p = c.run("convert", m, "-o", c.path("link.slm"), expect=2)
    check("symbolic link" in p.stderr and "--force" in p.stderr, p.stderr)
    c.run("convert", m, "-o", c.path("link.slm"), "--force")
    check(open(c.path("victim")).read() == "precious" and not os.path.islink(c.path("link.slm")), "wrote through")
    p = c.run("convert", m, "-o", "/dev/null", expect=2)
    check("a device" in p.stderr, p.stderr)
    p = c.run("calibrate", c.path("m.slm"), "--text", c.path("victim"), "-o", c.path("victim"), expect=2)
    check("is the input" in p.stderr and open(c.path("victim")).read() == "precious", p.stderr)
    check(open(c.path("m.slm"), "rb").read() == before, "the input changed")
    # synth writes a directory: a link to a directory or an existing directory is refused; with
    # --force the entry is replaced (nothing written into the old directory or through the link).
    os.mkdir(c.path("vdir"))
    with open(c.path("vdir", "keep"), "w") as fh:
        fh.write("precious")
    os.symlink(c.path("vdir"), c.path("dlink"))
    for out in ("dlink", "vdir"):
        p = c.run("synth", "-o", c.path(out), expect=2)
        check("--force" in p.stderr, (out, p.stderr))
    check(os.listdir(c.path("vdir")) == ["keep"], os.listdir(c.path("vdir")))
    c.run("synth", "-o", c.path("dlink"), "--force")
    check(not os.path.islink(c.path("dlink")) and os.listdir(c.path("vdir")) == ["keep"], "wrote through the link")
    c.run("synth", "-o", c.path("vdir"), "--force")
    check(sorted(os.listdir(c.path("vdir"))) == ["config.json", "model.safetensors"], os.listdir(c.path("vdir")))
    leftovers(c, ["model", "m.slm", "victim", "link.slm", "vdir", "dlink"])


def test_apply_interrupted_or_out_of_space_keeps_old_files(c):
    """docs/FLEET.md §3: an apply killed mid-way (stopped after its first op by a test hook, then
    signalled), or one whose writes fail (RLIMIT_FSIZE: EFBIG, as a full disk fails them), leaves
    OLD and the destination's previous content intact and no temporary behind."""
    import resource
    import signal
    import time
    if len(c.cmd) > 1:
        raise Skip("signals and resource limits go to the emulator, not to the tool")
    m = c.synth()
    old, new, u, dest = c.path("old.slm"), c.path("new.slm"), c.path("u.slmdelta"), c.path("next.slm")
    c.run("convert", m, "-o", old, "--recipe", "int8")
    c.run("convert", m, "-o", new, "--recipe", "int8", "--rule", "*.layers.1.mlp.*=int4")
    check(c.json("delta", old, new, "-o", u)["op_count"] >= 3, "the delta needs several ops to stop between")
    old_bytes = open(old, "rb").read()
    previous = b"the update that was there before"
    keep = ["model", "old.slm", "new.slm", "u.slmdelta", "next.slm"]

    def intact(what):
        check(open(old, "rb").read() == old_bytes, f"{what}: OLD changed")
        check(open(dest, "rb").read() == previous, f"{what}: the destination changed")
        leftovers(c, keep)

    cases = 0
    for named in (False, True):
        env = dict(os.environ, SLMC_TEST_STOP_AT="1")
        if named:
            env["SLMC_TEST_NO_O_TMPFILE"] = "1"
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            open(dest, "wb").write(previous)
            p = subprocess.Popen([*c.cmd, "apply", old, u, "-o", dest, "--force"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, env=env)
            deadline = time.time() + 60
            while open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "T":
                check(time.time() < deadline and p.poll() is None, "apply did not stop at the test hook")
                time.sleep(0.01)
            p.send_signal(sig)
            if sig != signal.SIGKILL:
                p.send_signal(signal.SIGCONT)
            p.wait(timeout=60)
            check(p.returncode == -sig, (named, sig, p.returncode))
            if named and sig == signal.SIGKILL:
                # Nothing runs at SIGKILL: the named temporary stays until the next apply to the same
                # output sweeps it. OLD and the destination are intact all the same.
                check(open(old, "rb").read() == old_bytes and open(dest, "rb").read() == previous, "SIGKILL")
                c.run("apply", old, u, "-o", dest, "--force", env=dict(os.environ, SLMC_TEST_NO_O_TMPFILE="1"))
                check(open(dest, "rb").read() == open(new, "rb").read(), "the next apply")
                leftovers(c, keep)
                continue
            intact(f"named={named} signal {sig}")
            cases += 1
    check(cases == 5, cases)

    # Out of space: every write beyond half of NEW fails (EFBIG; SIGXFSZ ignored, as a full disk's
    # ENOSPC fails them): a clean error, nothing changed.
    limit = os.path.getsize(new) // 2

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    for named in (False, True):
        open(dest, "wb").write(previous)
        env = dict(os.environ)
        if named:
            env["SLMC_TEST_NO_O_TMPFILE"] = "1"
        p = subprocess.run([*c.cmd, "apply", old, u, "-o", dest, "--force"], capture_output=True, text=True, env=env,
                           preexec_fn=limited, timeout=120)
        check(p.returncode == 3 and "next.slm" in p.stderr and "too large" in p.stderr, (p.returncode, p.stderr))
        intact(f"out of space, named={named}")
    # And the same apply with room succeeds.
    c.run("apply", old, u, "-o", dest, "--force")
    check(open(dest, "rb").read() == open(new, "rb").read(), "apply after the failures")


def test_hostile_signals_leave_nothing_behind(c):
    """convert interrupted at several points by SIGINT, SIGTERM and SIGKILL leaves no output and
    no temporary file, with O_TMPFILE and with the named fallback (forced by a test hook)."""
    import signal
    import time
    m = c.synth("big", dim=768, hidden=2048, layers=4, vocab=32000)
    t0 = time.time()
    c.run("convert", m, "-o", c.path("ref.slm"), "--recipe", "fp32")
    duration = time.time() - t0
    os.remove(c.path("ref.slm"))
    cases = 0
    for named in (False, True):
        env = dict(os.environ)
        if named:
            env["SLMC_TEST_NO_O_TMPFILE"] = "1"
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            for frac in (0.3, 0.7, 0.9):
                p = subprocess.Popen([*c.cmd, "convert", m, "-o", c.path("out.slm"), "--recipe", "fp32"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
                time.sleep(duration * frac)
                p.send_signal(sig)
                p.wait(timeout=60)
                if p.returncode == 0:
                    os.remove(c.path("out.slm"))  # finished before the signal: nothing to check
                    continue
                cases += 1
                check(p.returncode == -sig, (named, sig, frac, p.returncode))
                if os.path.exists(c.path("out.slm")):
                    # The signal came after the rename (while the report was printed): the file
                    # must then be complete.
                    c.run("verify", c.path("out.slm"))
                    os.remove(c.path("out.slm"))
                if named and sig == signal.SIGKILL:
                    # Nothing can run at SIGKILL: the next writer of the same output cleans up.
                    c.run("convert", m, "-o", c.path("out.slm"), "--recipe", "int8", env=env)
                    leftovers(c, ["big", "out.slm"])
                    os.remove(c.path("out.slm"))
                leftovers(c, ["big"])
    check(cases >= 9, f"only {cases} interrupted runs: the conversion finished too fast to interrupt")


def test_hostile_export_signals_leave_nothing_behind(c):
    """export (a safetensors file, or a Hugging Face directory) interrupted by SIGINT or SIGKILL
    leaves no output and no temporary (it left OUT.tmp-<pid>); after a SIGKILL the next export
    beside it removes the dead process's temporary file or directory."""
    import signal
    import time
    m = c.synth("big", dim=512, hidden=1376, layers=4, vocab=32000)
    c.run("convert", m, "-o", c.path("m.slm"), "--recipe", "fp32")
    cases = 0
    for fmt in ("file", "hf"):
        out = c.path("out" if fmt == "hf" else "out.safetensors")
        args = ["export", c.path("m.slm"), "-o", out] + (["--format", "hf"] if fmt == "hf" else [])
        t0 = time.time()
        c.run(*args)
        duration = time.time() - t0
        shutil.rmtree(out) if fmt == "hf" else os.remove(out)
        for named in ((False, True) if fmt == "file" else (False,)):
            env = dict(os.environ)
            if named:
                env["SLMC_TEST_NO_O_TMPFILE"] = "1"
            for sig in (signal.SIGINT, signal.SIGKILL):
                for frac in (0.3, 0.7):
                    p = subprocess.Popen([*c.cmd, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
                    time.sleep(duration * frac)
                    p.send_signal(sig)
                    p.wait(timeout=60 * TIMEOUT_SCALE)
                    if p.returncode != 0:
                        cases += 1
                        check(p.returncode == -sig, (fmt, named, sig, frac, p.returncode))
                    if os.path.exists(out):  # finished before the signal, or the signal came after the rename
                        shutil.rmtree(out) if fmt == "hf" else os.remove(out)
                    if sig == signal.SIGKILL:
                        c.run(*args, env=env)  # sweeps what the killed process could not remove
                        shutil.rmtree(out) if fmt == "hf" else os.remove(out)
                    leftovers(c, ["big", "m.slm"])
    check(cases >= 6, f"only {cases} interrupted runs: export finished too fast to interrupt")


def test_hostile_exit_codes_and_messages(c):
    m = c.synth()
    c.run("convert", m, "-o", c.path("m.slm"))
    # A report that cannot be written is a failure, whatever the command.
    for args in (("inspect", c.path("m.slm"), "--json"), ("info",), ("tokenize", c.path("m.slm"), "--prompt", "x"),
                 ("convert", m, "--dry-run", "--json"), ("verify", c.path("m.slm"), "--json"),
                 ("diff", c.path("m.slm"), c.path("m.slm"), "--json"), ("bench", c.path("m.slm"), "--min-time", "0.01", "--json")):
        with open("/dev/full", "w") as full:
            p = subprocess.run([*c.cmd, *args], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
        check(p.returncode != 0 and ("standard output" in p.stderr or "no tokenizer" in p.stderr), (args, p.returncode, p.stderr))
    # One SLMC_ISA policy: a usage error in every command, before anything runs.
    env = dict(os.environ, SLMC_ISA="no-such-isa")
    with open(c.path("t.txt"), "w") as fh:
        fh.write("some text.\n\nmore text.\n")
    for isa in ("no-such-isa", "neon" if "x86" in os.uname().machine else "avx2"):
        env = dict(os.environ, SLMC_ISA=isa)
        for args in (("convert", m, "-o", c.path("isa.slm")), ("inspect", c.path("m.slm")), ("info",),
                     ("bench", c.path("m.slm")), ("tokenize", c.path("m.slm"), "--prompt", "x"),
                     ("eval", c.path("m.slm"), "--tokenizer", c.path("m.slm"), "--text", c.path("t.txt")),
                     ("generate", c.path("m.slm"), "--tokenizer", c.path("m.slm"), "--bos"),
                     ("calibrate", c.path("m.slm"), "--text", c.path("t.txt"), "-o", c.path("isa.json")),
                     ("export", c.path("m.slm"), "-o", c.path("isa.safetensors")), ("diff", c.path("m.slm"), c.path("m.slm")),
                     ("verify", c.path("m.slm")), ("synth", "-o", c.path("isa_model"))):
            p = c.run(*args, expect=2, env=env)
            check(f"SLMC_ISA={isa}" in p.stderr, (isa, args, p.stderr))
    os.remove(c.path("t.txt"))
    # Output names the file system cannot hold fail before the conversion.
    p = c.run("convert", m, "-o", c.path("n" * 252 + ".slm"), expect=2)
    check("bytes, longer than" in p.stderr, p.stderr)
    c.run("convert", m, "-o", c.path("n" * 251 + ".slm"))  # 255 bytes: fine, temporaries included
    os.remove(c.path("n" * 251 + ".slm"))
    leftovers(c, ["model", "m.slm"])


def test_hostile_corrupted_file_is_caught_by_every_reader(c):
    """A flipped byte inside a tensor's data (header intact): every command that reads data exits 5
    naming the tensor; --no-verify skips the pass; inspect (header only) still works."""
    m = c.synth()
    c.run("convert", m, "-o", c.path("a.slm"), "--recipe", "int8")
    c.run("convert", m, "-o", c.path("b.slm"), "--recipe", "int8")
    size = os.path.getsize(c.path("b.slm"))
    with open(c.path("b.slm"), "r+b") as fh:
        fh.seek(size - 100)
        byte = fh.read(1)
        fh.seek(size - 100)
        fh.write(bytes([byte[0] ^ 0x40]))
    for args in (("export", c.path("b.slm"), "-o", c.path("b.safetensors")), ("diff", c.path("a.slm"), c.path("b.slm")),
                 ("bench", c.path("b.slm"), "--min-time", "0.01"), ("verify", c.path("b.slm")),
                 ("generate", c.path("b.slm"), "--bos", "--tokenizer", c.path("a.slm"))):
        p = c.run(*args, expect=5)
        check("checksum" in p.stderr or "checksum" in p.stdout, (args, p.stderr))
    check(not os.path.exists(c.path("b.safetensors")), "nothing exported from a corrupted file")
    c.run("export", c.path("b.slm"), "-o", c.path("b.safetensors"), "--no-verify")
    c.run("inspect", c.path("b.slm"))


def test_hostile_denormal_weights_are_not_reported_exact(c):
    # Every weight denormal: int4 rounds them all to zero, a 100% error the report must show.
    write_safetensors(c.path("d.safetensors"), {"w": ([4, 64], [1e-40 * ((i % 7) - 3) for i in range(256)])})
    r = c.json("convert", c.path("d.safetensors"), "--rule", "w=int4:group=32", "--max-rel-error", "0.5",
               "--dry-run", expect=4)
    w = r["tensors"][0]
    check(w["rel_error"] == 1 and not r["gates"]["passed"], w)
    c.run("convert", c.path("d.safetensors"), "--rule", "w=int4:group=32", "-o", c.path("d.slm"))
    c.run("verify", c.path("d.slm"), "--source", c.path("d.safetensors"))  # recorded == recomputed


def test_hostile_huge_header_is_linear(c):
    """200,000 tensors in one safetensors header (the duplicate-key check was quadratic: minutes).
    A hang guard with a generous bound; a duplicate key anywhere is still refused."""
    import struct
    n = 200000
    header = {f"t{i}": {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i in range(n)}
    text = json.dumps(header).encode()
    with open(c.path("many.safetensors"), "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text + b"\0" * (4 * n))
    p = subprocess.run([*c.cmd, "convert", c.path("many.safetensors"), "--recipe", "fp32", "--dry-run", "--json"],
                       capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE)
    check(p.returncode == 0 and json.loads(p.stdout)["total"]["weights"] == n, (p.returncode, p.stderr[-500:]))
    dup = text[:-1] + b', "t7": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    with open(c.path("dup.safetensors"), "wb") as fh:
        fh.write(struct.pack("<Q", len(dup)) + dup + b"\0" * (4 * n))
    p = c.run("convert", c.path("dup.safetensors"), "-o", c.path("dup.slm"), expect=3)
    check("duplicate key 't7'" in p.stderr, p.stderr)


def test_empty_tensors_are_valid(c):
    """FORMAT.md allows empty tensors (M = 0 or K = 0): every recipe converts them (exit 0, stored as
    dense float without data) and every reader handles them."""
    write_safetensors(c.path("e.safetensors"), {"a": ([0, 4], []), "z": ([3, 0], []), "b": ([2, 32], [0.5] * 64)})
    for recipe in ("fp32", "w4", "int8", "w8-2:4", "w8-bitmask50"):
        r = c.json("convert", c.path("e.safetensors"), "-o", c.path(recipe + ".slm"), "--recipe", recipe)
        enc = {t["name"]: (t["encoding"], t["bytes_out"]) for t in r["tensors"]}
        check(enc["a"] == ("fp32", 0) and enc["z"] == ("fp32", 0), (recipe, enc))
        c.run("verify", c.path(recipe + ".slm"), "--source", c.path("e.safetensors"))
    c.run("export", c.path("w4.slm"), "-o", c.path("back.safetensors"))
    r = c.json("convert", c.path("back.safetensors"), "-o", c.path("again.slm"), "--recipe", "fp32")
    check(sorted(t["name"] for t in r["tensors"]) == ["a", "b", "z"], r["tensors"])
    c.run("diff", c.path("fp32.slm"), c.path("again.slm"))


def test_hostile_non_finite_options(c):
    m = c.synth()
    c.run("convert", m, "-o", c.path("m.slm"))
    for bad in ("nan", "inf", "-inf"):
        p = c.run("convert", m, "-o", c.path("x.slm"), "--max-rel-error", bad, expect=2)
        check("--max-rel-error" in p.stderr, p.stderr)
        p = c.run("generate", c.path("m.slm"), "--tokenizer", c.path("m.slm"), "--temperature", bad, expect=2)
        check("--temperature" in p.stderr, p.stderr)
    p = c.run("generate", c.path("m.slm"), "-n", "9223372036854775807", "--bos", expect=None)
    check(p.returncode in (2, 3), (p.returncode, p.stderr))
    leftovers(c, ["model", "m.slm"])


def test_hostile_names_are_escaped_on_the_terminal(c):
    esc = "w\x1b]0;pwned\x07\x1b[31m\u0085"
    write_safetensors(c.path("esc.safetensors"), {esc: ([2, 4], [1, 2, 3, 4, 5, 6, 7, 8])},
                      metadata={"note\x1b[2J": "v\x1b[1m"})
    p = c.run("convert", c.path("esc.safetensors"), "-o", c.path("e.slm"), "--recipe", "fp32")
    for out in (p.stdout, c.run("inspect", c.path("e.slm")).stdout, c.run("diff", c.path("e.slm"), c.path("e.slm")).stdout):
        check("\x1b" not in out and "\u0085" not in out, repr(out[:400]))
    check("\\x1B[31m" in c.run("inspect", c.path("e.slm")).stdout, "the escape is shown, escaped")
    j = c.json("inspect", c.path("e.slm"))  # JSON keeps the real name (JSON escapes it)
    check(any(t["name"] == esc for t in j["tensors"]), [t["name"] for t in j["tensors"]])
    # Invalid UTF-8 (a stray byte, an overlong, a surrogate) in a name or metadata is refused at
    # the door (it used to be stored and then break inspect --json).
    import struct
    for meta in (b'{"k": "v\xff"}', b'{"k\xc0\xaf": "v"}', b'{"k": "\xed\xa0\x80"}'):
        text = b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "__metadata__": ' + meta + b"}"
        with open(c.path("u.safetensors"), "wb") as fh:
            fh.write(struct.pack("<Q", len(text)) + text + b"\0" * 4)
        p = c.run("convert", c.path("u.safetensors"), "-o", c.path("u.slm"), expect=3)
        check("u.safetensors" in p.stderr and "UTF-8" in p.stderr, (meta, p.stderr))
        check(not os.path.exists(c.path("u.slm")), "no output")


def write_llama2c(path, dim=16, hidden=32, layers=2, heads=2, kv_heads=2, vocab=64, seq=32):
    """A legacy llama2.c checkpoint (shared classifier) with deterministic weights."""
    import struct
    head, kv = dim // heads, dim * kv_heads // heads
    floats = (vocab * dim + layers * (2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * hidden * dim) + dim +
              seq * head)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab, seq))
        fh.write(struct.pack(f"<{floats}f", *[((i * 37) % 101 - 50) / 100.0 for i in range(floats)]))


def write_llama2c_tokenizer(path, n_tokens=512):
    """A llama2.c tokenizer.bin of exactly n_tokens: <unk>, <s>, </s>, the 256 byte tokens, then
    pieces of one and two letters (with and without a leading space) scored by length."""
    import itertools
    import string
    import struct
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    letters = string.ascii_lowercase + ".,"
    extra = [a for a in letters] + ["\u2581" + a for a in letters] + [a + b for a, b in itertools.product(letters, repeat=2)]
    pieces += extra[:n_tokens - len(pieces)]
    with open(path, "wb") as fh:
        fh.write(struct.pack("<i", 16))
        for i, piece in enumerate(pieces):
            b = piece.encode()
            score = 0.0 if i < 259 else -float(i)
            fh.write(struct.pack("<fi", score, len(b)) + b)


def wait_stopped(pid, timeout):
    """True once process `pid` is stopped (state T), False after `timeout` seconds."""
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return True
        if state == "Z":
            return False
        time.sleep(0.01)
    return False


def test_hostile_shrinking_input_is_an_error(c):
    """A source file truncated while convert reads it (was SIGBUS through the mapping): inputs are
    read with pread, so convert exits 3 naming the file and the offset, and leaves no output and
    no temporary file (O_TMPFILE and the named fallback). SLMC_TEST_STOP_AT stops the process after
    that many tensors so the test can truncate the file at a known point."""
    import signal
    m = c.synth()
    write_llama2c(c.path("l2c.bin"))
    tmpdir = c.path("tmp")
    os.mkdir(tmpdir)
    runs = 0
    for src, data in ((m, os.path.join(m, "model.safetensors")), (c.path("l2c.bin"), c.path("l2c.bin"))):
        original = open(data, "rb").read()
        for named in (False, True):
            env = dict(os.environ, SLMC_TEST_STOP_AT="2", TMPDIR=tmpdir)
            if named:
                env["SLMC_TEST_NO_O_TMPFILE"] = "1"
            p = subprocess.Popen([*c.cmd, "convert", src, "-o", c.path("out.slm"), "--recipe", "int8"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
            try:
                check(wait_stopped(p.pid, 60 * TIMEOUT_SCALE), "convert never reached the stop point")
                os.truncate(data, 1024)
            finally:
                p.send_signal(signal.SIGCONT)
            err = p.communicate(timeout=120 * TIMEOUT_SCALE)[1]
            check(p.returncode == 3, (src, named, p.returncode, err))
            check("shrank" in err and data in err and "offset" in err and "1024 bytes now" in err, err)
            check(not os.path.exists(c.path("out.slm")), "no output after a shrinking input")
            check(os.listdir(tmpdir) == [], os.listdir(tmpdir))
            leftovers(c, ["model", "l2c.bin", "tmp"])
            runs += 1
            with open(data, "wb") as fh:
                fh.write(original)
        c.run("convert", src, "-o", c.path("ok.slm"), "--recipe", "int8")  # the restored file converts
        os.remove(c.path("ok.slm"))
    check(runs == 4, runs)


def xxh64(data, seed=0):
    """XXH64 (the .slm checksums), so a test can forge a file whose checksums are valid."""
    import struct
    P1, P2, P3 = 11400714785074694791, 14029467366897019727, 1609587929392839161
    P4, P5, M = 9650029242287828579, 2870177450012600261, (1 << 64) - 1

    def rotl(x, r):
        return ((x << r) | (x >> (64 - r))) & M

    def rnd(acc, v):
        return (rotl((acc + v * P2) & M, 31) * P1) & M

    n, i = len(data), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed, (seed - P1) & M]
        while i + 32 <= n:
            v = [rnd(v[k], x) for k, x in enumerate(struct.unpack_from("<4Q", data, i))]
            i += 32
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M
        for x in v:
            h = ((h ^ rnd(0, x)) * P1 + P4) & M
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while i + 8 <= n:
        h = (rotl(h ^ rnd(0, struct.unpack_from("<Q", data, i)[0]), 27) * P1 + P4) & M
        i += 8
    if i + 4 <= n:
        h = (rotl(h ^ ((struct.unpack_from("<I", data, i)[0] * P1) & M), 23) * P2 + P3) & M
        i += 4
    while i < n:
        h = (rotl(h ^ ((data[i] * P5) & M), 11) * P1) & M
        i += 1
    h ^= h >> 33
    h = (h * P2) & M
    h ^= h >> 29
    h = (h * P3) & M
    return h ^ (h >> 32)


def peak_rss_kib_of(c, *args, expect=0, env=None):
    """Runs the tool and returns (process, its peak RSS in KiB) from wait4's rusage."""
    p = subprocess.Popen([*c.cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _, status, usage = os.wait4(p.pid, 0)
    out, err = p.stdout.read(), p.stderr.read()
    p.stdout.close()
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    check(expect is None or p.returncode == expect, (args, p.returncode, err[-2000:]))
    p.out, p.err = out, err
    return p, usage.ru_maxrss


def test_hostile_memory_bombs_are_bounded_by_the_data(c):
    """A small .slm with valid checksums whose CSR tensor claims K = 10^8 (a 17 KB file made export
    allocate 1.5 GB): the loader bounds a tensor's decoded size by the bytes it stores, so every
    command refuses it, exit 3 naming the tensor, in little memory. And a context_length of 4e7
    does not size the KV cache: eval --window 32 stays small."""
    import struct
    K = 70000  # > 65536: u32 column indices, which hold any inflated K
    vals = [0.0] * (4 * K)
    for r in range(4):
        for j in range(0, K, 997):
            vals[r * K + j] = 1.0 + r + j / K
    write_safetensors(c.path("sparse.safetensors"), {"w": ([4, K], vals)})
    c.run("convert", c.path("sparse.safetensors"), "-o", c.path("ok.slm"), "--rule", "w=fp32:sparsity=0.99,format=csr")
    data = bytearray(open(c.path("ok.slm"), "rb").read())
    fb_size = struct.unpack_from("<Q", data, 24)[0]
    check(xxh64(bytes(data[64:64 + fb_size])) == struct.unpack_from("<Q", data, 48)[0], "xxh64 of the header")
    needle = struct.pack("<qq", 4, K)
    at = data.find(needle, 64, 64 + fb_size)
    check(at > 0 and data.find(needle, at + 1, 64 + fb_size) < 0, "the shape [4, K] once in the header")
    struct.pack_into("<q", data, at + 8, 10 ** 8)
    struct.pack_into("<Q", data, 48, xxh64(bytes(data[64:64 + fb_size])))
    struct.pack_into("<Q", data, 56, xxh64(bytes(data[:56])))
    with open(c.path("bomb.slm"), "wb") as fh:
        fh.write(data)
    check(len(data) < 64 * 1024, len(data))
    for args in (("export", c.path("bomb.slm"), "-o", c.path("bomb.safetensors")), ("verify", c.path("bomb.slm")),
                 ("inspect", c.path("bomb.slm")), ("diff", c.path("ok.slm"), c.path("bomb.slm")),
                 ("bench", c.path("bomb.slm"))):
        p, rss = peak_rss_kib_of(c, *args, expect=3)
        check("tensor 'w'" in p.err and "stored bytes" in p.err, (args, p.err))
        check(rss < 200 * 1024, (args, f"peak RSS {rss} KiB"))
    check(not os.path.exists(c.path("bomb.safetensors")), "nothing exported")
    leftovers(c, ["sparse.safetensors", "ok.slm", "bomb.slm"])

    m = c.synth(vocab=512)
    write_llama2c_tokenizer(c.path("tok.bin"), 512)
    cfg = json.load(open(os.path.join(m, "config.json")))
    cfg["max_position_embeddings"] = 40000000
    with open(os.path.join(m, "config.json"), "w") as fh:
        json.dump(cfg, fh)
    c.run("convert", m, "-o", c.path("long.slm"))
    with open(c.path("text.txt"), "w") as fh:
        fh.write("the quick brown fox jumps over the lazy dog. " * 40)
    p, rss = peak_rss_kib_of(c, "eval", c.path("long.slm"), "--tokenizer", c.path("tok.bin"), "--text",
                             c.path("text.txt"), "--window", "32", "--json")
    check(json.loads(p.out)["tokens"] > 0, p.out[:300])
    check(rss < 200 * 1024, f"eval peak RSS {rss} KiB with context_length 4e7")


def test_hostile_wrong_json_types_name_the_key(c):
    """A JSON value of the wrong type in any input file (config.json, tokenizer.json,
    tokenizer_config.json, calibration, profile) is exit 3 (2 for a profile, like a recipe) with a
    message naming the file and the key, before anything is written; it was accepted and misread
    (2.5 layers), failed at run time, or escaped as an internal error (exit 1)."""
    import copy
    m = c.synth()
    cfg0 = json.load(open(os.path.join(m, "config.json")))
    tok0 = {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<s>": 3}, "merges": ["a b"]},
            "added_tokens": [{"id": 3, "content": "<s>", "special": True}],
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
            "decoder": None, "normalizer": None,
            "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}]}}

    def put(name, value):
        with open(os.path.join(m, name), "w") as fh:
            json.dump(value, fh)

    def refused(what, key, args, code=3):
        p = c.run(*args, expect=None)
        check(p.returncode == code and key in p.stderr and "internal error" not in p.stderr, (what, p.returncode, p.stderr))
        check(not os.path.exists(c.path("o.slm")), (what, "output written"))

    convert = ("convert", m, "-o", c.path("o.slm"))
    for key, value in (("hidden_size", "64"), ("num_hidden_layers", 2.5), ("rope_theta", "x"), ("vocab_size", True),
                       ("max_position_embeddings", -5), ("model_type", 5), ("rope_scaling", [1])):
        put("config.json", dict(cfg0, **{key: value}))
        refused(("config.json", key), f"config.json: '{key}'", convert)
    put("config.json", dict(cfg0, rope_scaling={"rope_type": "llama3", "factor": "8"}))
    refused("rope_scaling.factor", "'rope_scaling.factor'", convert)
    put("config.json", cfg0)
    for path, value, key in ((("model", "byte_fallback"), "yes", "model.byte_fallback"),
                             (("added_tokens", 0, "special"), "true", "added_tokens[].special"),
                             (("post_processor", "single", 0, "SpecialToken", "id"), 5,
                              "post_processor.single[0].SpecialToken.id")):
        tok = copy.deepcopy(tok0)
        node = tok
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        put("tokenizer.json", tok)
        refused(key, f"tokenizer.json: '{key}'", convert)
    put("tokenizer.json", tok0)
    for key, value in (("add_bos_token", "yes"), ("bos_token", 5), ("eos_token", {"content": 5}),
                       ("chat_template", [{"name": 5, "template": "x"}])):
        put("tokenizer_config.json", {key: value})
        refused(key, "tokenizer_config.json: '" + key, convert)
    os.remove(os.path.join(m, "tokenizer_config.json"))
    c.run(*convert)  # the repaired directory converts
    os.remove(c.path("o.slm"))
    for text, key in (('{"format": 7}', '"format"'), ('{"format": "slmc-calibration", "version": 1, "tensors": []}', '"tensors"')):
        with open(c.path("cal.json"), "w") as fh:
            fh.write(text)
        refused(("calibration", text), key, (*convert, "--calibration", c.path("cal.json")))
    with open(c.path("profile.json"), "w") as fh:
        fh.write('{"format": 7, "version": 1}')
    refused("profile", '"format"', (*convert, "--profile", c.path("profile.json")), code=2)
    leftovers(c, ["model", "cal.json", "profile.json"])


def test_hostile_llama2c_tokenizer_is_linear(c):
    """The llama2.c tokenizer merged pairs by rescanning the paragraph (40 KB: 19 s). A 1 MB
    paragraph and a 200 KB word must tokenize in linear time: a hang guard with a generous bound."""
    import random
    import time
    write_llama2c_tokenizer(c.path("tok.bin"), 512)
    rng = random.Random(5)
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and", "zebra", "quiz"]
    with open(c.path("para.txt"), "w") as fh:
        fh.write(" ".join(rng.choice(words) for _ in range(220000))[:1_000_000])
    with open(c.path("word.txt"), "w") as fh:
        fh.write("ab" * 100_000)
    for name, least in (("para.txt", 300_000), ("word.txt", 100_000)):
        t0 = time.time()
        p = subprocess.run([*c.cmd, "tokenize", c.path("tok.bin"), "--text", c.path(name), "--json"],
                           capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE)
        took = time.time() - t0
        check(p.returncode == 0 and json.loads(p.stdout)["count"] >= least, (name, p.returncode, p.stderr[-300:]))
        check(took < 20 * TIMEOUT_SCALE, f"{name}: {took:.1f} s")


def test_hostile_empty_texts_and_linked_outputs(c):
    """eval and calibrate on a text without 2 tokens (empty, blank lines) exit 3 naming the file;
    export and calibrate refuse an output that is a symlink (exit 2) and leave its target alone."""
    m = c.synth(vocab=512)
    write_llama2c_tokenizer(c.path("tok.bin"), 512)
    c.run("convert", m, "-o", c.path("m.slm"))
    with open(c.path("empty.txt"), "w"):
        pass
    with open(c.path("blank.txt"), "w") as fh:
        fh.write("\n\n   \n\t\n")
    for text in ("empty.txt", "blank.txt"):
        for args in (("eval", c.path("m.slm"), "--tokenizer", c.path("tok.bin"), "--text", c.path(text)),
                     ("calibrate", c.path("m.slm"), "--tokenizer", c.path("tok.bin"), "--text", c.path(text), "-o",
                      c.path("cal.json"))):
            p = c.run(*args, expect=3)
            check(text in p.stderr and "tokens" in p.stderr, (args, p.stderr))
    with open(c.path("victim"), "w") as fh:
        fh.write("precious")
    os.symlink(c.path("victim"), c.path("link"))
    with open(c.path("t.txt"), "w") as fh:
        fh.write("the quick brown fox jumps over the lazy dog. " * 20)
    for args in (("export", c.path("m.slm"), "-o", c.path("link")),
                 ("export", c.path("m.slm"), "--format", "hf", "-o", c.path("link")),
                 ("calibrate", c.path("m.slm"), "--tokenizer", c.path("tok.bin"), "--text", c.path("t.txt"), "-o",
                  c.path("link"))):
        p = c.run(*args, expect=2)
        check("symbolic link" in p.stderr and "--force" in p.stderr, (args, p.stderr))
    check(open(c.path("victim")).read() == "precious" and os.path.islink(c.path("link")), "the link or its target changed")
    leftovers(c, ["model", "tok.bin", "m.slm", "empty.txt", "blank.txt", "victim", "link", "t.txt"])


# --- delta / apply (docs/FLEET.md) ---------------------------------------------------------------

def perturb_safetensors(path, pattern, scale, seed=1):
    """Adds a small deterministic perturbation (relative size `scale`) to every F32 tensor of a
    safetensors file whose name contains `pattern`, in place (same header, same offsets)."""
    import random
    import re
    import struct
    rng = random.Random(seed)
    with open(path, "r+b") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        base = 8 + n
        touched = 0
        for name, info in header.items():
            if name == "__metadata__" or not re.search(pattern, name) or info["dtype"] != "F32":
                continue
            a, b = info["data_offsets"]
            fh.seek(base + a)
            vals = list(struct.unpack(f"<{(b - a) // 4}f", fh.read(b - a)))
            rms = (sum(v * v for v in vals) / max(len(vals), 1)) ** 0.5
            vals = [v + scale * rms * rng.gauss(0, 1) for v in vals]
            fh.seek(base + a)
            fh.write(struct.pack(f"<{len(vals)}f", *vals))
            touched += 1
    return touched


def delta_round_trip(c, old, new, name):
    """delta + apply: the output equals NEW byte for byte, diff's update_bytes is the delta's size."""
    d = c.json("delta", old, new, "-o", c.path(name + ".slmdelta"))
    size = os.path.getsize(c.path(name + ".slmdelta"))
    check(d["delta_bytes"] == size and d["new_file_bytes"] == os.path.getsize(new), (d["delta_bytes"], size))
    diff = c.json("diff", old, new)
    check(diff["update_bytes"] == size, (diff["update_bytes"], size))
    a = c.json("apply", old, c.path(name + ".slmdelta"), "-o", c.path(name + ".out.slm"))
    check(a["segments_verified"] > 0 and a["new_file_bytes"] == os.path.getsize(new), a)
    with open(new, "rb") as x, open(c.path(name + ".out.slm"), "rb") as y:
        check(x.read() == y.read(), f"{name}: apply did not reproduce NEW byte for byte")
    c.run("verify", c.path(name + ".out.slm"))
    return d


def test_delta_recipe_change(c):
    m = c.synth()
    old, new = c.path("old.slm"), c.path("new.slm")
    c.run("convert", m, "-o", old, "--recipe", "int8")
    changed = ["model.layers.1.mlp.up_proj.weight", "model.layers.0.self_attn.v_proj.weight"]
    c.run("convert", m, "-o", new, "--recipe", "int8", *sum((["--rule", f"{n}=int4"] for n in changed), []))
    d = delta_round_trip(c, old, new, "u")
    by_tensor = {}
    for it in d["items"]:
        by_tensor.setdefault(it["tensor"], set()).add(it["op"])
    for n in changed:
        check("copy" not in by_tensor[n], (n, by_tensor[n]))
    copied = [n for n, ops in by_tensor.items() if n and ops == {"copy"}]
    check(len(copied) == 20 - 2, by_tensor)
    changed_bytes = sum(it["bytes"] for it in d["items"] if it["tensor"] in changed)
    check(d["changed_segment_bytes"] == changed_bytes, d["changed_segment_bytes"])
    check(d["delta_bytes"] <= changed_bytes * 1.01 + 4096, (d["delta_bytes"], changed_bytes))
    check(d["delta_bytes"] < os.path.getsize(new) // 3, d["delta_bytes"])


def test_delta_weight_perturbation(c):
    m = c.synth(layers=2)
    shutil.copytree(m, c.path("tuned"))
    touched = perturb_safetensors(c.path("tuned", "model.safetensors"), r"self_attn\.[qkvo]_proj\.weight", 0.01)
    check(touched == 8, touched)
    old, new = c.path("old.slm"), c.path("new.slm")
    c.run("convert", m, "-o", old, "--recipe", "int8")
    c.run("convert", c.path("tuned"), "-o", new, "--recipe", "int8")
    d = delta_round_trip(c, old, new, "u")
    ops = {(it["tensor"], it["what"]): it["op"] for it in d["items"]}
    check(ops[("model.layers.0.self_attn.q_proj.weight", "values")] in ("xor", "add"), ops)
    check(ops[("model.layers.0.mlp.up_proj.weight", "values")] == "copy", ops)
    check(d["delta_bytes"] < os.path.getsize(new) // 2, (d["delta_bytes"], os.path.getsize(new)))


def test_delta_identical_files(c):
    m = c.synth()
    c.run("convert", m, "-o", c.path("a.slm"))
    shutil.copyfile(c.path("a.slm"), c.path("b.slm"))
    d = delta_round_trip(c, c.path("a.slm"), c.path("b.slm"), "u")
    check(d["copied_bytes"] + d["zero_bytes"] + d["literal_bytes"] == os.path.getsize(c.path("b.slm")), d)
    check(d["xor_bytes"] == d["add_bytes"] == 0 and d["changed_segment_bytes"] == 0, d)
    check([it["what"] for it in d["items"] if it["op"] != "copy"] == ["header"], d["items"])
    check(d["op_count"] == 2, d["op_count"])  # the header, then one copy of the whole data section
    check(d["delta_bytes"] < 128 + 56 * 2 + 256, d["delta_bytes"])  # the header costs a few bytes


def test_delta_refuses_wrong_base_and_damage(c):
    m = c.synth()
    old, new, other = c.path("old.slm"), c.path("new.slm"), c.path("other.slm")
    c.run("convert", m, "-o", old, "--recipe", "int8")
    c.run("convert", m, "-o", new, "--recipe", "int8", "--rule", "*.layers.1.mlp.*=int4")
    c.run("convert", m, "-o", other, "--recipe", "w4")
    u = c.path("u.slmdelta")
    c.run("delta", old, new, "-o", u)
    keep = ["model", "old.slm", "new.slm", "other.slm", "u.slmdelta"]
    out = c.path("out.slm")
    # Another base: exit 5, nothing written, no temporary left.
    p = c.run("apply", other, u, "-o", out, expect=5)
    check("wrong base" in p.stderr and "other.slm" in p.stderr, p.stderr)
    leftovers(c, keep)
    # A base with the same size but one flipped byte is another base too.
    data = bytearray(open(old, "rb").read())
    data[len(data) // 2] ^= 1
    open(c.path("old2.slm"), "wb").write(bytes(data))
    c.run("apply", c.path("old2.slm"), u, "-o", out, expect=5)
    os.remove(c.path("old2.slm"))
    leftovers(c, keep)
    good = open(u, "rb").read()
    bad = c.path("bad.slmdelta")
    # A flipped byte anywhere (preamble, payloads, op table) is refused: checksum (5) or format (3).
    for pos in (0, 9, 20, 40, 130, len(good) // 2, len(good) - 60, len(good) - 1):
        data = bytearray(good)
        data[pos] ^= 0x10
        open(bad, "wb").write(bytes(data))
        p = c.run("apply", old, bad, "-o", out, expect=None)
        check(p.returncode in (3, 5), (pos, p.returncode, p.stderr))
        check("bad.slmdelta" in p.stderr, p.stderr)
        leftovers(c, keep + ["bad.slmdelta"])
    data = bytearray(good)
    data[len(good) // 2] ^= 0x10
    open(bad, "wb").write(bytes(data))
    p = c.run("apply", old, bad, "-o", out, expect=5)
    check("checksum mismatch" in p.stderr, p.stderr)
    # Truncated: exit 3 naming it.
    for n in (0, 100, 128, len(good) - 1):
        open(bad, "wb").write(good[:n])
        p = c.run("apply", old, bad, "-o", out, expect=3)
        check("truncated" in p.stderr, p.stderr)
    open(bad, "wb").write(b"not a delta at all" * 10)
    p = c.run("apply", old, bad, "-o", out, expect=3)
    check("SLMDELTA" in p.stderr, p.stderr)
    os.remove(bad)
    leftovers(c, keep)
    # Outputs that name an input are refused (exit 2), for delta and apply alike.
    c.run("apply", old, u, "-o", old, expect=2)
    c.run("apply", old, u, "-o", u, expect=2)
    c.run("delta", old, new, "-o", new, expect=2)
    c.run("delta", old, new, "-o", c.path("x.slmdelta"), "--level", "30", expect=2)
    # Inputs that are not .slm files are exit 3.
    c.run("delta", u, new, "-o", c.path("x.slmdelta"), expect=3)
    leftovers(c, keep)
    # An output that is a link to the base is the base: refused. A planted link elsewhere is
    # refused without --force, and replaced (not written through) with it.
    os.symlink(old, c.path("alias.slm"))
    p = c.run("apply", old, u, "-o", c.path("alias.slm"), expect=2)
    check("is the input" in p.stderr, p.stderr)
    os.remove(c.path("alias.slm"))
    with open(c.path("victim"), "w") as fh:
        fh.write("precious")
    os.symlink(c.path("victim"), c.path("link.slm"))
    p = c.run("apply", old, u, "-o", c.path("link.slm"), expect=2)
    check("symbolic link" in p.stderr, p.stderr)
    c.run("apply", old, u, "-o", c.path("link.slm"), "--force")
    check(open(c.path("victim")).read() == "precious" and not os.path.islink(c.path("link.slm")), "wrote through")
    check(open(c.path("link.slm"), "rb").read() == open(new, "rb").read(), "forced apply output")
    c.run("apply", old, u, "-o", "/dev/null", expect=2)
    leftovers(c, keep + ["victim", "link.slm"])
    check(open(old, "rb").read() != b"", "the base is untouched")


def test_delta_malformed_ops_with_valid_checksums(c):
    """A delta whose checksums are right but whose op table is wrong (a buggy writer, or a forger
    without a signature) is still refused, naming the op: the validator, not only the checksum."""
    import struct
    m = c.synth()
    old, new = c.path("old.slm"), c.path("new.slm")
    c.run("convert", m, "-o", old, "--recipe", "int8")
    c.run("convert", m, "-o", new, "--recipe", "int8", "--rule", "*.layers.1.mlp.up_proj.weight=int4")
    u = c.path("u.slmdelta")
    c.run("delta", old, new, "-o", u)
    good = bytearray(open(u, "rb").read())
    count, table = struct.unpack_from("<QQ", good, 64)
    ops = [list(struct.unpack_from("<BBHIQQQQQQ", good, table + 56 * i)) for i in range(count)]
    # fields: kind, codec, r16, r32, new_len, old_offset, old_len, payload_offset, payload_size, xxh64

    def forge(edit):
        data = bytearray(good)
        o = [list(x) for x in ops]
        edit(o, data)
        for i, x in enumerate(o):
            struct.pack_into("<BBHIQQQQQQ", data, table + 56 * i, *x)
        struct.pack_into("<Q", data, 16, len(data))
        struct.pack_into("<Q", data, 112, xxh64(bytes(data[128:])))
        struct.pack_into("<Q", data, 120, xxh64(bytes(data[:120])))
        bad = c.path("bad.slmdelta")
        open(bad, "wb").write(bytes(data))
        return bad

    first = lambda o, kind: next(i for i, x in enumerate(o) if x[0] == kind)
    cases = [
        (lambda o, d: o[0].__setitem__(0, 9), 3, "unknown op kind"),
        (lambda o, d: o[0].__setitem__(2, 1), 3, "reserved"),
        (lambda o, d: o[first(o, 1)].__setitem__(5, 1 << 40), 3, "outside the base"),
        (lambda o, d: o[first(o, 2)].__setitem__(7, 1 << 40), 3, "outside the payload area"),
        (lambda o, d: o[-1].__setitem__(4, o[-1][4] + 1), 3, "overruns NEW"),
        (lambda o, d: (o[-1].__setitem__(4, o[-1][4] - 1), o[-1].__setitem__(6, o[-1][6] - 1)), 3, "NEW has"),
        (lambda o, d: o[first(o, 1)].__setitem__(9, o[first(o, 1)][9] ^ 1), 5, "the delta expects"),
        (lambda o, d: o[0].__setitem__(8, o[0][8] - 1), 3, "zstd"),
        (lambda o, d: o[first(o, 1)].__setitem__(1, 2), 3, "has a codec"),
    ]
    for edit, code, text in cases:
        p = c.run("apply", old, forge(edit), "-o", c.path("out.slm"), expect=code)
        check(text in p.stderr and ("op " in p.stderr or "ops" in p.stderr), (text, p.stderr))
        leftovers(c, ["model", "old.slm", "new.slm", "u.slmdelta", "bad.slmdelta"])
    # The unmodified table passes the same re-signing (the forge itself is right).
    c.run("apply", old, forge(lambda o, d: None), "-o", c.path("out.slm"))
    check(open(c.path("out.slm"), "rb").read() == open(new, "rb").read(), "forge round trip")


# --- signatures (docs/FLEET.md §6) ----------------------------------------------------------------

def signed_pair(c):
    m = c.synth()
    old, new = c.path("old.slm"), c.path("new.slm")
    c.run("convert", m, "-o", old, "--recipe", "int8")
    c.run("convert", m, "-o", new, "--recipe", "int8", "--rule", "*.layers.1.mlp.*=int4")
    k = c.json("keygen", "-o", c.path("k"))
    check(k["public_key"] == c.path("k.pub") and len(k["key_id"]) == 16, k)
    check(os.stat(c.path("k")).st_mode & 0o777 == 0o600, oct(os.stat(c.path("k")).st_mode))
    return old, new, k["key_id"]


def test_sign_verify_tampered_wrong_key_truncated(c):
    old, new, key_id = signed_pair(c)
    s = c.json("sign", new, "--key", c.path("k"))
    check(s["signature"] == new + ".sig" and s["kind"] == "slm" and s["key_id"] == key_id, s)
    check(os.path.getsize(new + ".sig") == 160, os.path.getsize(new + ".sig"))
    v = c.json("verify", new, "--pubkey", c.path("k.pub"))
    check(v["ok"] and v["signature"]["ok"] and v["signature"]["key_id"] == key_id and v["checksums"]["ok"], v)
    # keygen never replaces a key silently.
    p = c.run("keygen", "-o", c.path("k"), expect=2)
    check("exists" in p.stderr, p.stderr)
    c.run("keygen", "-o", c.path("k2"))
    keep = ["model", "old.slm", "new.slm", "new.slm.sig", "k", "k.pub", "k2", "k2.pub"]
    # Another key: exit 5 naming both key ids.
    p = c.run("verify", new, "--pubkey", c.path("k2.pub"), expect=5)
    check("signed by key " + key_id in p.stderr and "new.slm.sig" in p.stderr, p.stderr)
    # A tampered model (one byte anywhere) fails the signature before anything else: exit 5.
    good = open(new, "rb").read()
    for pos in (0, 70, len(good) // 2, len(good) - 1):
        data = bytearray(good)
        data[pos] ^= 0x01
        open(c.path("bad.slm"), "wb").write(bytes(data))
        p = c.run("verify", c.path("bad.slm"), "--pubkey", c.path("k.pub"), "--sig", new + ".sig", expect=5)
        check("signature verification failed" in p.stderr and "bad.slm" in p.stderr, (pos, p.stderr))
    # Another file under the right signature, e.g. an older release: exit 5.
    c.run("verify", old, "--pubkey", c.path("k.pub"), "--sig", new + ".sig", expect=5)
    # Damaged or truncated signatures: exit 5 (the Ed25519 check) or 3 (malformed), naming the .sig.
    sig = open(new + ".sig", "rb").read()
    for pos in (0, 12, 20, 60, 64, 80, 100, 159):
        data = bytearray(sig)
        data[pos] ^= 0x04
        open(c.path("bad.sig"), "wb").write(bytes(data))
        p = c.run("verify", new, "--pubkey", c.path("k.pub"), "--sig", c.path("bad.sig"), expect=None)
        check(p.returncode in (3, 5) and "bad.sig" in p.stderr, (pos, p.returncode, p.stderr))
    for n in (0, 8, 96, 159):
        open(c.path("bad.sig"), "wb").write(sig[:n])
        p = c.run("verify", new, "--pubkey", c.path("k.pub"), "--sig", c.path("bad.sig"), expect=3)
        check("truncated" in p.stderr, p.stderr)
    os.remove(c.path("bad.sig"))
    # A missing signature, a key that is not a key, --sig without --pubkey.
    p = c.run("verify", old, "--pubkey", c.path("k.pub"), expect=3)
    check("old.slm.sig" in p.stderr, p.stderr)
    p = c.run("verify", new, "--pubkey", new + ".sig", expect=3)
    check("not a PEM public key" in p.stderr, p.stderr)
    p = c.run("verify", new, "--pubkey", new, expect=3)  # 100 KB: not read as a key
    check("new.slm" in p.stderr, p.stderr)
    p = c.run("sign", new, "--key", c.path("k.pub"), "-o", c.path("x.sig"), expect=3)
    check("not a private key" in p.stderr, p.stderr)
    c.run("verify", new, "--sig", new + ".sig", expect=2)
    # sign never overwrites what it signs, nor its key.
    c.run("sign", new, "--key", c.path("k"), "-o", new, expect=2)
    c.run("sign", new, "--key", c.path("k"), "-o", c.path("k"), expect=2)
    os.remove(c.path("bad.slm"))
    leftovers(c, keep)
    check(open(new, "rb").read() == good, "verify modified its input")


def test_sign_apply_refuses_unsigned_and_forged_deltas(c):
    old, new, key_id = signed_pair(c)
    u = c.path("u.slmdelta")
    d = c.json("delta", old, new, "-o", u, "--sign", c.path("k"))
    check(d["signature"]["path"] == u + ".sig" and d["signature"]["key_id"] == key_id, d["signature"])
    out = c.path("out.slm")
    a = c.json("apply", old, u, "-o", out, "--pubkey", c.path("k.pub"))
    check(a["signature_verified"] and a["signer_key_id"] == key_id, a)
    check(open(out, "rb").read() == open(new, "rb").read(), "signed apply output")
    os.remove(out)
    c.json("verify", u, "--pubkey", c.path("k.pub"))
    keep = ["model", "old.slm", "new.slm", "k", "k.pub", "k2", "k2.pub", "u.slmdelta", "u.slmdelta.sig"]
    c.run("keygen", "-o", c.path("k2"))
    # Wrong key, missing signature, damaged delta, forged delta with valid checksums: nothing written.
    p = c.run("apply", old, u, "-o", out, "--pubkey", c.path("k2.pub"), expect=5)
    check("signed by key" in p.stderr, p.stderr)
    shutil.copyfile(u, c.path("plain.slmdelta"))
    p = c.run("apply", old, c.path("plain.slmdelta"), "-o", out, "--pubkey", c.path("k.pub"), expect=3)
    check("plain.slmdelta.sig" in p.stderr, p.stderr)
    good = bytearray(open(u, "rb").read())
    # Re-checksummed forgery: change a payload byte and fix every xxh64 (anyone can): the
    # checksums pass, the signature does not.
    import struct
    forged = bytearray(good)
    forged[200] ^= 0x01
    struct.pack_into("<Q", forged, 112, xxh64(bytes(forged[128:])))
    struct.pack_into("<Q", forged, 120, xxh64(bytes(forged[:120])))
    open(c.path("forged.slmdelta"), "wb").write(bytes(forged))
    p = c.run("apply", old, c.path("forged.slmdelta"), "-o", out, "--pubkey", c.path("k.pub"),
              "--sig", u + ".sig", expect=5)
    check("signature verification failed" in p.stderr, p.stderr)
    truncated = c.path("short.sig")
    open(truncated, "wb").write(open(u + ".sig", "rb").read()[:100])
    p = c.run("apply", old, u, "-o", out, "--pubkey", c.path("k.pub"), "--sig", truncated, expect=3)
    check("truncated" in p.stderr, p.stderr)
    # A signed apply uses exactly the verified payload bytes, in order: 16 unused bytes slipped in
    # before the op table (valid checksums, validly signed) are refused by a signed apply only.
    count, table = struct.unpack_from("<QQ", good, 64)
    gap = bytearray(good[:table]) + bytes(16) + good[table:]
    struct.pack_into("<Q", gap, 72, table + 16)
    struct.pack_into("<Q", gap, 16, len(gap))
    struct.pack_into("<Q", gap, 112, xxh64(bytes(gap[128:])))
    struct.pack_into("<Q", gap, 120, xxh64(bytes(gap[:120])))
    open(c.path("gap.slmdelta"), "wb").write(bytes(gap))
    c.run("sign", c.path("gap.slmdelta"), "--key", c.path("k"))
    p = c.run("apply", old, c.path("gap.slmdelta"), "-o", out, "--pubkey", c.path("k.pub"), expect=5)
    check("not the signed bytes" in p.stderr, p.stderr)
    leftovers(c, keep + ["gap.slmdelta", "gap.slmdelta.sig", "forged.slmdelta", "plain.slmdelta", "short.sig"])
    c.run("apply", old, c.path("gap.slmdelta"), "-o", out)
    check(open(out, "rb").read() == open(new, "rb").read(), "unsigned apply of the padded delta")
    for f in ("gap.slmdelta", "gap.slmdelta.sig", "out.slm"):
        os.remove(c.path(f))
    # -o may not name the signature or the key.
    c.run("apply", old, u, "-o", u + ".sig", "--pubkey", c.path("k.pub"), expect=2)
    c.run("apply", old, u, "-o", c.path("k.pub"), "--pubkey", c.path("k.pub"), expect=2)
    for f in ("plain.slmdelta", "forged.slmdelta", "short.sig"):
        os.remove(c.path(f))
    leftovers(c, keep)
    check(open(u, "rb").read() == bytes(good), "apply modified the delta")


def test_sign_example_updater_checks_the_signature(c):
    """examples/ota_update.cpp with a public key: applies a signed delta, refuses another key's."""
    updater = os.path.join(os.path.dirname(os.path.abspath(c.binary)), "..", "examples", "example_ota_update")
    if not os.path.exists(updater) or len(c.cmd) > 1:
        raise Skip("example_ota_update not built (SLMC_BUILD_EXAMPLES) or emulated")
    old, new, key_id = signed_pair(c)
    c.run("delta", old, new, "-o", c.path("u.slmdelta"), "--sign", c.path("k"))
    c.run("keygen", "-o", c.path("k2"))
    p = subprocess.run([updater, old, c.path("u.slmdelta"), c.path("k2.pub")], capture_output=True, text=True,
                       timeout=120 * TIMEOUT_SCALE)
    check(p.returncode == 5 and "signed by key" in p.stderr, (p.returncode, p.stderr))
    check(not os.path.exists(old + ".next"), "a refused update left its output")
    p = subprocess.run([updater, old, c.path("u.slmdelta"), c.path("k.pub")], capture_output=True, text=True,
                       timeout=120 * TIMEOUT_SCALE)
    check(p.returncode == 0 and key_id in p.stdout, (p.returncode, p.stdout, p.stderr))
    check(open(old, "rb").read() == open(new, "rb").read(), "the updater did not install NEW")


# --- release manifests (docs/FLEET.md §7) ------------------------------------------------------

def release_inputs(c):
    m = c.synth(vocab=512)
    write_llama2c_tokenizer(c.path("tok.bin"), 512)
    words = "the quick brown fox jumps over a lazy dog and then runs far away".split()
    with open(c.path("eval.txt"), "w") as fh:
        fh.write("\n\n".join(" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(50)) for i in range(30)))
    c.run("keygen", "-o", c.path("k"))
    return m


def test_release_manifest_signed_gated_with_deltas(c):
    m = release_inputs(c)
    common = ["--text", c.path("eval.txt"), "--tokenizer", c.path("tok.bin"), "--max-tokens", "1024",
              "--threads", "1", "--prompt-tokens", "32", "--gen-tokens", "8", "--repetitions", "1"]
    r1 = c.json("release", m, "--profile", "x86-avx2", "--profile", "cortex-a53", "-o", c.path("r1"),
                "--sign", c.path("k"), "--release", "v1", *common)
    check(r1["format"] == "slmc-release-manifest" and r1["version"] == 1 and r1["release"] == "v1", r1)
    check([p["profile"] for p in r1["profiles"]] == ["x86-avx2", "cortex-a53"], r1["profiles"])
    for p in r1["profiles"]:
        f = c.path("r1", p["model"]["file"])
        check(p["model"]["size"] == os.path.getsize(f), p)
        check(p["model"]["sha256"] == hashlib.sha256(open(f, "rb").read()).hexdigest(), p)
        check(p["format_version"] == "1.1" and p["min_library_version"] == "0.1.0", p)
        check(p["quality"]["kl"] >= 0 and "delta_ppl_percent" in p["quality"], p["quality"])
        check(p["delta"] is None and p["model"]["signature"] == p["model"]["file"] + ".sig", p)
    # Speed only where the profile's ISA runs natively: never for an ARM profile on x86.
    arm = r1["profiles"][1]["speed"]
    check(arm["measured"] is False and "natively" in arm["reason"], arm)
    check(r1["evaluation"]["tokens"] > 1 and r1["source"]["files"][0]["sha256"], r1["evaluation"])
    check(json.load(open(c.path("r1", "manifest.json"))) == r1, "the manifest is what --json printed")
    v = c.json("verify", c.path("r1", "manifest.json"), "--pubkey", c.path("k.pub"))
    check(v["ok"] and v["signature_verified"] and v["file_signatures_verified"] == 2 and len(v["files"]) == 2, v)

    # The next release, with a recipe change in a profile file: deltas from v1, which apply (signed)
    # to v1's files and give v2's byte for byte.
    with open(c.path("a53.json"), "w") as fh:
        json.dump({"format": "slmc-profile", "version": 1, "name": "cortex-a53", "isa": "neon",
                   "recipe": "int8", "rules": ["*.layers.1.mlp.*=int4"]}, fh)
    r2 = c.json("release", m, "--profile", "x86-avx2", "--profile", c.path("a53.json"), "-o", c.path("r2"),
                "--sign", c.path("k"), "--release", "v2", "--previous", c.path("r1", "manifest.json"), *common)
    check(r2["previous"]["release"] == "v1", r2["previous"])
    for p1, p2 in zip(r1["profiles"], r2["profiles"]):
        d = p2["delta"]
        check(d["from_release"] == "v1" and d["base_sha256"] == p1["model"]["sha256"], d)
        out = c.path(p2["profile"] + ".applied.slm")
        c.run("apply", c.path("r1", p1["model"]["file"]), c.path("r2", d["file"]), "-o", out,
              "--pubkey", c.path("k.pub"))
        check(open(out, "rb").read() == open(c.path("r2", p2["model"]["file"]), "rb").read(), p2["profile"])
    check(r2["profiles"][0]["delta"]["size"] < 4096, r2["profiles"][0]["delta"])  # unchanged file: header only
    v = c.json("verify", c.path("r2", "manifest.json"), "--pubkey", c.path("k.pub"))
    check(len(v["files"]) == 4 and v["file_signatures_verified"] == 4, v)

    # Tampering: a listed file, the manifest, the wrong key, a forged manifest with a hash fixed up.
    shutil.copytree(c.path("r2"), c.path("t"))
    with open(c.path("t", "x86-avx2.slm"), "r+b") as fh:
        fh.seek(5000)
        b = fh.read(1)
        fh.seek(5000)
        fh.write(bytes([b[0] ^ 1]))
    p = c.run("verify", c.path("t", "manifest.json"), expect=5)
    check("x86-avx2.slm" in p.stderr and "SHA-256" in p.stderr and "x86-avx2" in p.stderr, p.stderr)
    forged = json.load(open(c.path("t", "manifest.json")))
    forged["profiles"][0]["model"]["sha256"] = hashlib.sha256(open(c.path("t", "x86-avx2.slm"), "rb").read()).hexdigest()
    json.dump(forged, open(c.path("t", "manifest.json"), "w"), indent=2)
    c.run("verify", c.path("t", "manifest.json"))  # integrity without a key: consistent again
    p = c.run("verify", c.path("t", "manifest.json"), "--pubkey", c.path("k.pub"), expect=5)
    check("signature verification failed" in p.stderr and "manifest.json" in p.stderr, p.stderr)
    c.run("keygen", "-o", c.path("k2"))
    p = c.run("verify", c.path("r2", "manifest.json"), "--pubkey", c.path("k2.pub"), expect=5)
    check("signed by key" in p.stderr, p.stderr)
    os.remove(c.path("r2", "cortex-a53.from-v1.slmdelta"))
    p = c.run("verify", c.path("r2", "manifest.json"), expect=3)
    check("cortex-a53.from-v1.slmdelta" in p.stderr, p.stderr)

    # A failing gate fails the release (exit 4) naming the profile and the figure; nothing written.
    p = c.run("release", m, "--profile", "x86-avx2", "-o", c.path("r3"), "--max-kl", "0", *common, expect=4)
    check("x86-avx2" in p.stderr and "KL" in p.stderr, p.stderr)
    p = c.run("release", m, "--profile", "x86-avx2", "-o", c.path("r3"), "--max-dppl", "1", *common, expect=4)
    check("x86-avx2" in p.stderr and "perplexity" in p.stderr, p.stderr)
    with open(c.path("tiny.json"), "w") as fh:
        json.dump({"format": "slmc-profile", "version": 1, "name": "tiny", "isa": "scalar",
                   "memory_budget_bytes": 1000}, fh)
    p = c.run("release", m, "--profile", c.path("tiny.json"), "-o", c.path("r3"), expect=4)
    check("tiny" in p.stderr, p.stderr)
    check(not os.path.exists(c.path("r3")), "a failed release left its directory")
    # Usage: an existing directory needs --force; gates need --text; a profile twice.
    c.run("release", m, "--profile", "x86-avx2", "-o", c.path("r1"), expect=2)
    c.run("release", m, "--profile", "x86-avx2", "-o", c.path("r3"), "--max-kl", "1", expect=2)
    c.run("release", m, "--profile", "x86-avx2", "--profile", "x86-avx2", "-o", c.path("r3"), expect=2)
    check(not os.path.exists(c.path("r3")) and not any(n.startswith(".") for n in os.listdir(c.tmp)),
          os.listdir(c.tmp))


def test_release_manifest_hostile(c):
    """A manifest cannot make verify read outside its directory, and wrong types name the key."""
    m = release_inputs(c)
    c.run("release", m, "--profile", "x86-avx2", "-o", c.path("r"), "--repetitions", "0")
    good = json.load(open(c.path("r", "manifest.json")))
    cases = [
        (lambda j: j["profiles"][0]["model"].__setitem__("file", "../k"), "without a directory"),
        (lambda j: j["profiles"][0]["model"].__setitem__("file", "/etc/passwd"), "without a directory"),
        (lambda j: j["profiles"][0]["model"].__setitem__("size", "12"), "size"),
        (lambda j: j["profiles"][0]["model"].__setitem__("sha256", "XYZ"), "sha256"),
        (lambda j: j.__setitem__("format", "other"), "format"),
        (lambda j: j.__setitem__("profiles", {}), "profiles"),
        (lambda j: j["profiles"][0].__delitem__("model"), "model"),
    ]
    for edit, text in cases:
        j = json.loads(json.dumps(good))
        edit(j)
        json.dump(j, open(c.path("r", "bad.json"), "w"))
        p = c.run("verify", c.path("r", "bad.json"), expect=3)
        check(text in p.stderr and "bad.json" in p.stderr, (text, p.stderr))
    j = json.loads(json.dumps(good))
    j["version"] = 2
    json.dump(j, open(c.path("r", "bad.json"), "w"))
    p = c.run("verify", c.path("r", "bad.json"), expect=3)
    check("not supported" in p.stderr, p.stderr)
    open(c.path("r", "bad.json"), "w").write("{" + deep_json(100) + "}")
    c.run("verify", c.path("r", "bad.json"), expect=3)
    open(c.path("r", "bad.json"), "w").write("{\"format\": ")
    p = c.run("verify", c.path("r", "bad.json"), expect=3)
    check("not valid JSON" in p.stderr, p.stderr)


def test_release_profile_gates(c):
    """Gates read from version-2 device profiles (docs/CLI.md, "Device profiles"), overridden by
    release's options; speed from bench --e2e's measurement with threads and repetitions."""
    import platform
    m = release_inputs(c)
    common = ["--text", c.path("eval.txt"), "--tokenizer", c.path("tok.bin"), "--max-tokens", "256",
              "--prompt-tokens", "16", "--gen-tokens", "8", "--repetitions", "2", "--threads", "1"]

    def profile(name, version=2, isa="scalar", **gates):
        path = c.path(name + ".json")
        j = {"format": "slmc-profile", "version": version, "name": name, "isa": isa, "recipe": "w4"}
        if gates:
            j["gates"] = gates
        with open(path, "w") as fh:
            json.dump(j, fh)
        return path

    def gone(d):
        check(not os.path.exists(c.path(d)), f"a failed release left {d}")

    # Passing gates are recorded with the figures they were checked against ("scalar" runs natively
    # everywhere, so its speed is always measured).
    ok = profile("dev", max_kl=100, max_delta_ppl_percent=1e6, min_decode_tokens_per_s=0)
    e = c.json("release", m, "--profile", ok, "-o", c.path("r1"), *common)["profiles"][0]
    check(e["gates"] == {"max_size": None, "max_kl": 100, "max_delta_ppl_percent": 1e6,
                         "min_decode_tokens_per_s": 0, "unchecked": []}, e["gates"])
    sp = e["speed"]
    check(sp["measured"] is True and sp["decode_tokens_per_s"] > 0 and sp["prefill_tokens_per_s"] > 0, sp)
    check(sp["threads"] == 1 and sp["repetitions"] == 2 and sp["prompt_tokens"] == 16 and sp["gen_tokens"] == 8, sp)
    check(len(sp["decode"]["samples"]) == 2 and sp["decode"]["min"] <= sp["decode_tokens_per_s"] <= sp["decode"]["max"],
          sp)

    # Each gate of the profile fails the release: exit 4 naming the profile and the figure.
    for gates, word in (({"max_kl": 0}, "KL"), ({"max_delta_ppl_percent": 0.001}, "perplexity"),
                        ({"min_decode_tokens_per_s": 1e12}, "tok/s"),
                        ({"max_size_bytes": 1000}, "exceeds max_size_bytes")):
        p = c.run("release", m, "--profile", profile("strict", **gates), "-o", c.path("r2"), *common, expect=4)
        check("'strict'" in p.stderr and word in p.stderr, (gates, p.stderr))
        gone("r2")
    # The options override the profile's gates: 'off' drops one, a number replaces it.
    strict = profile("strict", max_kl=0, min_decode_tokens_per_s=1e12, max_size_bytes=1000)
    e = c.json("release", m, "--profile", strict, "-o", c.path("r3"), "--max-kl", "off", "--min-tok-s", "0",
               "--max-size", "1GB", *common)["profiles"][0]
    check(e["gates"]["max_kl"] is None and e["gates"]["min_decode_tokens_per_s"] == 0 and
          e["gates"]["max_size"] == 10**9, e["gates"])
    p = c.run("release", m, "--profile", ok, "-o", c.path("r2"), "--min-tok-s", "1e12", *common, expect=4)
    check("'dev'" in p.stderr and "tok/s" in p.stderr and "1e+12" in p.stderr, p.stderr)
    gone("r2")
    # A profile whose ISA does not run here: its speed gate is recorded as unchecked, never measured.
    foreign = "neon" if platform.machine() in ("x86_64", "AMD64") else "avx2"
    if len(c.cmd) == 1:
        e = c.json("release", m, "--profile", profile("far", isa=foreign, min_decode_tokens_per_s=1e12),
                   "-o", c.path("r4"), *common)["profiles"][0]
        check(e["speed"]["measured"] is False and "natively" in e["speed"]["reason"], e["speed"])
        check(e["gates"]["unchecked"] == ["min_decode_tokens_per_s"], e["gates"])
    # A gate that cannot be checked is a usage error, never a silent pass.
    p = c.run("release", m, "--profile", profile("q", max_kl=1), "-o", c.path("r2"), expect=2)
    check("'q'" in p.stderr and "--text" in p.stderr, p.stderr)
    p = c.run("release", m, "--profile", profile("s", min_decode_tokens_per_s=1), "-o", c.path("r2"),
              "--repetitions", "0", expect=2)
    check("'s'" in p.stderr and "tok/s" in p.stderr, p.stderr)
    c.run("release", m, "--profile", ok, "-o", c.path("r2"), "--min-tok-s", "fast", *common, expect=2)
    c.run("release", m, "--profile", ok, "-o", c.path("r2"), "--max-kl", "-1", *common, expect=2)
    gone("r2")

    # Bad profiles: exit 2 naming the file and the field.
    bad = c.path("bad.json")
    for j, field in (({"version": 1, "gates": {"max_kl": 1}}, "version"),
                     ({"version": 3}, "version"),
                     ({"version": 2, "gates": {"max_kl": -1}}, "gates.max_kl"),
                     ({"version": 2, "gates": {"max_kl": "0.3"}}, "gates.max_kl"),
                     ({"version": 2, "gates": {"min_tok_s": 5}}, "gates.min_tok_s"),
                     ({"version": 2, "gates": {"max_size_bytes": 0}}, "gates.max_size_bytes"),
                     ({"version": 2, "gates": {"max_size_bytes": 1.5}}, "gates.max_size_bytes"),
                     ({"version": 2, "gates": [1]}, "gates")):
        with open(bad, "w") as fh:
            json.dump({"format": "slmc-profile", "name": "b", **j}, fh)
        for cmd in (("release", m, "--profile", bad, "-o", c.path("r2"), *common),
                    ("convert", m, "--profile", bad, "-o", c.path("b.slm"))):
            p = c.run(*cmd, expect=2)
            check("bad.json" in p.stderr and field in p.stderr, (cmd[0], j, p.stderr))
    gone("r2")
    # convert checks a profile's size gate (it does not evaluate); --max-size overrides it.
    tiny = profile("tiny", max_size_bytes=1000, max_kl=0)
    c.run("convert", m, "--profile", tiny, "-o", c.path("t.slm"), expect=4)
    check(not os.path.exists(c.path("t.slm")), "convert wrote a file over its size gate")
    c.run("convert", m, "--profile", tiny, "-o", c.path("t.slm"), "--max-size", "1GB")


def test_release_pipeline_example(c):
    """examples/release_pipeline.sh runs as documented: two releases, the second with deltas."""
    if len(c.cmd) > 1:
        raise Skip("the example runs the binary directly (not behind an emulator)")
    m = release_inputs(c)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "release_pipeline.sh")
    env = dict(os.environ, SLM=c.binary, RELEASE_KEY=c.path("k"), SOURCE=m, EVAL_TEXT=c.path("eval.txt"),
               PUBLISH_DIR=c.path("pub"), TOKENIZER=c.path("tok.bin"), MAX_KL="100", MAX_DPPL="100000",
               MIN_TOK_S="0", RELEASE_ARGS="--threads 1 --prompt-tokens 32 --gen-tokens 8 --repetitions 1")
    for version, previous in (("v1", ""), ("v2", c.path("pub", "v1", "manifest.json"))):
        p = subprocess.run(["bash", script], env=dict(env, VERSION=version, PREVIOUS=previous),
                           capture_output=True, text=True, timeout=600 * TIMEOUT_SCALE)
        check(p.returncode == 0 and "published" in p.stdout, (version, p.stdout, p.stderr))
    manifest = json.load(open(c.path("pub", "v2", "manifest.json")))
    check(len(manifest["profiles"]) == 4 and all(e["delta"]["from_release"] == "v1" for e in manifest["profiles"]),
          manifest["profiles"])
    # The example's profiles carry the gates; the job's variables override them for every profile.
    g = {e["profile"]: e["gates"] for e in manifest["profiles"]}
    check(g["cortex-a53"]["max_size"] == 200000000 and g["x86-avx2"]["max_kl"] == 100 and
          g["x86-avx2"]["min_decode_tokens_per_s"] == 0, g)
    # The profiles' own gates fail this random model: the job fails with exit 4 and publishes nothing.
    env.pop("MAX_KL")
    env.pop("MAX_DPPL")
    p = subprocess.run(["bash", script], env=dict(env, VERSION="v3", PREVIOUS=""), capture_output=True, text=True,
                       timeout=600 * TIMEOUT_SCALE)
    check(p.returncode == 4 and "gate exceeded" in p.stderr and "max_kl" in p.stderr, (p.returncode, p.stderr))
    check(sorted(os.listdir(c.path("pub"))) == ["v1", "v2"], os.listdir(c.path("pub")))


# --- calibration without central text (docs/FLEET.md §8) -------------------------------------

def read_calibration_json(path):
    """{name: (count, mean_sq, gram upper triangle)} of a JSON calibration file."""
    t = json.load(open(path))["tensors"]
    return {k: (v["count"], v["mean_sq"], v.get("gram", [])) for k, v in t.items()}


def test_calibrate_merge_equals_calibration_at_once(c):
    """Shards calibrated apart and merged give the statistics of all their documents calibrated at
    once (windows never cross a document boundary), up to fp32 rounding; the privacy minimum and
    mismatched inputs are refused."""
    import math
    m = c.synth(vocab=512)
    write_llama2c_tokenizer(c.path("tok.bin"), 512)
    c.run("convert", m, "-o", c.path("m.slm"), "--recipe", "int8")
    words = "the quick brown fox jumps over a lazy dog and then runs far away".split()
    paras = [" ".join(words[(i * 5 + j * j) % len(words)] for j in range(20 + (i * 37) % 90)) for i in range(18)]
    for name, ps in (("a", paras[:7]), ("b", paras[7:]), ("ab", paras)):
        with open(c.path(name + ".txt"), "w") as fh:
            fh.write("\n\n".join(ps))
    cal = ["calibrate", c.path("m.slm"), "--tokenizer", c.path("tok.bin"), "--split", "all", "--gram", "--window", "64"]
    r = {}
    for name in ("a", "b", "ab"):
        r[name] = c.json(*cal, "--text", c.path(name + ".txt"), "-o", c.path(name + ".cal"))
    check(r["ab"]["documents"] == 18 and r["a"]["documents"] + r["b"]["documents"] == 18, r)
    merged = c.json("calibrate-merge", c.path("a.cal"), c.path("b.cal"), "-o", c.path("m.json"))
    check(merged["tensors"] == 14 and merged["format"] == "json", merged)
    c.run(*cal, "--text", c.path("ab.txt"), "-o", c.path("ab.json"))
    got, want = read_calibration_json(c.path("m.json")), read_calibration_json(c.path("ab.json"))
    check(set(got) == set(want), (sorted(got), sorted(want)))
    worst = 0.0
    for name, (count, mean_sq, gram) in want.items():
        gc, gm, gg = got[name]
        check(gc == count, (name, gc, count))
        worst = max([worst] + [abs(x - y) / y for x, y in zip(gm, mean_sq) if y])
        k, idx = len(mean_sq), 0
        check(len(gg) == len(gram) == k * (k + 1) // 2, name)
        for i in range(k):
            for j in range(i, k):
                scale = math.sqrt(mean_sq[i] * mean_sq[j])
                if scale:
                    worst = max(worst, abs(gg[idx] - gram[idx]) / scale)
                idx += 1
    check(worst <= 2.5e-7, worst)  # two fp32 roundings and the summation order
    # The merged binary file is accepted by convert like any calibration.
    c.run("calibrate-merge", c.path("a.cal"), c.path("b.cal"), "-o", c.path("m.cal"))
    c.run("convert", m, "-o", c.path("w.slm"), "--rule", "*.mlp.*=int4:search=weighted", "--calibration", c.path("m.cal"))
    # A contribution under the minimum token count: exit 4 naming the file and the count.
    with open(c.path("small.txt"), "w") as fh:
        fh.write(paras[0])
    c.run(*cal, "--text", c.path("small.txt"), "-o", c.path("small.cal"))
    p = c.run("calibrate-merge", c.path("a.cal"), c.path("small.cal"), "-o", c.path("x.cal"), expect=4)
    check("small.cal" in p.stderr and "fewer than the minimum of 512" in p.stderr, p.stderr)
    c.run("calibrate-merge", c.path("a.cal"), c.path("small.cal"), "-o", c.path("x.cal"), "--min-tokens", "0")
    # Statistics with and without Gram matrices, or of another model (K differs): exit 3.
    c.run("calibrate", c.path("m.slm"), "--tokenizer", c.path("tok.bin"), "--split", "all", "--text", c.path("b.txt"),
          "-o", c.path("nogram.cal"))
    p = c.run("calibrate-merge", c.path("a.cal"), c.path("nogram.cal"), "-o", c.path("y.cal"), expect=3)
    check("Gram" in p.stderr and "nogram.cal" in p.stderr, p.stderr)
    m2 = c.synth("model2", vocab=512, dim=32, hidden=96)
    c.run("convert", m2, "-o", c.path("m2.slm"), "--recipe", "int8")
    c.run("calibrate", c.path("m2.slm"), "--tokenizer", c.path("tok.bin"), "--split", "all", "--gram", "--text",
          c.path("b.txt"), "-o", c.path("other.cal"))
    p = c.run("calibrate-merge", c.path("a.cal"), c.path("other.cal"), "-o", c.path("y.cal"), expect=3)
    check("input channels" in p.stderr and "other.cal" in p.stderr, p.stderr)
    c.run("calibrate-merge", c.path("a.cal"), c.path("b.cal"), "-o", c.path("a.cal"), expect=2)
    c.run("calibrate-merge", c.path("a.cal"), c.path("b.txt"), "-o", c.path("y.cal"), expect=3)
    check(not os.path.exists(c.path("y.cal")), "a failed merge wrote its output")


def test_calibrate_private_clipping_and_noise(c):
    """--dp-*: rows clipped to the norm bound (every mean_sq <= C^2), documents cut, Gaussian noise
    with the documented sigma, reproducible only with a seed; bad parameters are usage errors."""
    import math
    m = c.synth(vocab=512)
    write_llama2c_tokenizer(c.path("tok.bin"), 512)
    c.run("convert", m, "-o", c.path("m.slm"), "--recipe", "int8")
    words = "the quick brown fox jumps over a lazy dog and then runs far away".split()
    with open(c.path("t.txt"), "w") as fh:
        fh.write("\n\n".join(" ".join(words[(i + j * 3) % len(words)] for j in range(10 + 13 * i)) for i in range(12)))
    cal = ["calibrate", c.path("m.slm"), "--tokenizer", c.path("tok.bin"), "--split", "all", "--text", c.path("t.txt"),
           "--window", "64"]
    clip = 0.5
    r = c.json(*cal, "-o", c.path("clip.json"), "--dp-clip", str(clip), "--dp-max-doc-tokens", "60")
    pv = r["privacy"]
    check(pv["rows_clipped"] > 0 and pv["documents_truncated"] > 0 and pv["sigma"] == 0, pv)
    t = read_calibration_json(c.path("clip.json"))
    check(max(max(v[1]) for v in t.values()) <= clip * clip * (1 + 1e-6), "a clipped row exceeded the bound")
    # The sensitivity and sigma are the documented formulas (no Gram: M layers, R rows/document).
    R, M = pv["rows_per_document"], pv["layers"]
    check(R == 60 + math.ceil(60 / 63) and M == len(t), (R, M, len(t)))
    check(abs(pv["sensitivity"] - math.sqrt(M * ((R * clip * clip) ** 2 + R * R))) < 1e-9 * pv["sensitivity"], pv)
    dp = ["--dp-clip", str(clip), "--dp-max-doc-tokens", "60", "--dp-epsilon", "0.5", "--dp-delta", "1e-6"]
    r1 = c.json(*cal, "-o", c.path("n1.json"), *dp, "--dp-seed", "7")
    sigma = r1["privacy"]["sigma"]
    check(abs(sigma - r1["privacy"]["sensitivity"] * math.sqrt(2 * math.log(1.25 / 1e-6)) / 0.5) < 1e-9 * sigma, r1)
    c.run(*cal, "-o", c.path("n2.json"), *dp, "--dp-seed", "7")
    check(open(c.path("n1.json")).read() == open(c.path("n2.json")).read(), "the same seed gave other noise")
    c.run(*cal, "-o", c.path("n3.json"), *dp)
    c.run(*cal, "-o", c.path("n4.json"), *dp)
    check(open(c.path("n3.json")).read() != open(c.path("n4.json")).read(), "unseeded noise repeated itself")
    check(read_calibration_json(c.path("n1.json")) != t, "no noise was added")
    for bad in (["--dp-clip", "1", "--dp-max-doc-tokens", "60", "--dp-epsilon", "1.5"],
                ["--dp-epsilon", "0.5"], ["--dp-clip", "-1", "--dp-max-doc-tokens", "60"],
                ["--dp-clip", "1", "--dp-max-doc-tokens", "60", "--dp-epsilon", "0.5", "--dp-delta", "0"]):
        c.run(*cal, "-o", c.path("bad.json"), *bad, expect=2)
    check(not os.path.exists(c.path("bad.json")), "a refused calibration wrote its output")


def test_real_stories260k_delta(c):
    d = models_dir()
    src = os.path.join(d, "stories260K", "stories260K.bin")
    # (a) a recipe change in a couple of tensors
    c.run("convert", src, "-o", c.path("a.slm"), "--recipe", "int8")
    rules = ["--rule", "model.layers.2.mlp.down_proj.weight=int4", "--rule", "model.layers.4.self_attn.q_proj.weight=int4"]
    c.run("convert", src, "-o", c.path("b.slm"), "--recipe", "int8", *rules)
    u = delta_round_trip(c, c.path("a.slm"), c.path("b.slm"), "recipe")
    check(u["delta_bytes"] <= u["changed_segment_bytes"] * 1.01 + 4096, u)
    # (b) a perturbation of every attention projection, same recipe
    c.run("export", c.path("a.slm"), "-o", c.path("base.safetensors"))
    shutil.copyfile(c.path("base.safetensors"), c.path("tuned.safetensors"))
    check(perturb_safetensors(c.path("tuned.safetensors"), r"self_attn\.[qkvo]_proj\.weight", 0.01) == 20, "attn")
    c.run("convert", c.path("base.safetensors"), "-o", c.path("c.slm"), "--recipe", "int8")
    c.run("convert", c.path("tuned.safetensors"), "-o", c.path("d.slm"), "--recipe", "int8")
    u = delta_round_trip(c, c.path("c.slm"), c.path("d.slm"), "tuned")
    check(u["xor_bytes"] + u["add_bytes"] > 0 and u["delta_bytes"] < os.path.getsize(c.path("d.slm")), u)
    # (c) identical
    shutil.copyfile(c.path("a.slm"), c.path("a2.slm"))
    u = delta_round_trip(c, c.path("a.slm"), c.path("a2.slm"), "same")
    check(u["changed_segment_bytes"] == 0 and u["delta_bytes"] < 4096, u)


def main():
    binary, name, emulator = sys.argv[1], sys.argv[2], sys.argv[3:]
    fn = globals().get(name)
    if fn is None or not name.startswith("test_"):
        print(f"unknown test {name}")
        return 2
    tmp = tempfile.mkdtemp(prefix="slmc-cli-")
    try:
        fn(Ctx(binary, emulator, tmp))
    except Skip as e:
        print(f"SKIPPED: {e}")
        return SKIP_CODE
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{name}: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
