#!/usr/bin/env python3
"""An independent BERT sentence-embedding forward pass: numpy over the model's safetensors (read with
the `safetensors` package), token ids from Hugging Face `tokenizers` (the directory's tokenizer.json),
pooling and normalization as sentence-transformers does it (mean over the attention mask, then
x / max(||x||, 1e-12) when modules.json lists Normalize). Nothing here uses slm-compress.

    bert_reference.py MODEL_DIR SENTENCES.txt OUT.npy [--max-len N]

writes an n x hidden float64 array, one row per non-blank line of SENTENCES.txt. Runs the batch
padded to its longest sentence with an additive attention mask, as HF's BertModel does."""
import json
import math
import os
import sys

import numpy as np


_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x):
    # numpy has no erf; math.erf per element keeps it exact (the arrays are small).
    return _erf(x).astype(np.float64)


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def load(model_dir):
    from safetensors.numpy import load_file
    weights = {k: v.astype(np.float64) for k, v in load_file(os.path.join(model_dir, "model.safetensors")).items()
               if v.dtype != np.int64}
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    return weights, cfg


def tokenize(model_dir, sentences, max_len):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_len)
    return [tok.encode(s).ids for s in sentences]


def forward(weights, cfg, batch_ids):
    w = weights
    heads, eps = cfg["num_attention_heads"], cfg.get("layer_norm_eps", 1e-12)
    n, longest = len(batch_ids), max(len(ids) for ids in batch_ids)
    ids = np.zeros((n, longest), dtype=np.int64)
    mask = np.zeros((n, longest))
    for i, s in enumerate(batch_ids):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = 1
    x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:longest][None]
         + w["embeddings.token_type_embeddings.weight"][0][None, None])
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    dim = x.shape[-1]
    hd = dim // heads
    additive = (1.0 - mask)[:, None, None, :] * -1e9

    def lin(v, name):
        return v @ w[name + ".weight"].T + w[name + ".bias"]

    for layer in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."

        def split(v):
            return v.reshape(n, longest, heads, hd).transpose(0, 2, 1, 3)

        q, k, v = (split(lin(x, p + "attention.self." + m)) for m in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd) + additive
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        att = (scores @ v).transpose(0, 2, 1, 3).reshape(n, longest, dim)
        x = layer_norm(lin(att, p + "attention.output.dense") + x, w[p + "attention.output.LayerNorm.weight"],
                       w[p + "attention.output.LayerNorm.bias"], eps)
        h = lin(x, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
        x = layer_norm(lin(h, p + "output.dense") + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"],
                       eps)
    return x, mask


def pooling(model_dir):
    mode, normalize = "mean", False
    modules = os.path.join(model_dir, "modules.json")
    if os.path.exists(modules):
        normalize = any(m["type"].endswith("Normalize") for m in json.load(open(modules)))
    pool = os.path.join(model_dir, "1_Pooling", "config.json")
    if os.path.exists(pool) and json.load(open(pool)).get("pooling_mode_cls_token"):
        mode = "cls"
    return mode, normalize


def embed(model_dir, sentences, max_len=256):
    weights, cfg = load(model_dir)
    ids = tokenize(model_dir, sentences, max_len)
    x, mask = forward(weights, cfg, ids)
    mode, normalize = pooling(model_dir)
    if mode == "cls":
        e = x[:, 0]
    else:
        e = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    if normalize:
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return e, ids


def main():
    model_dir, text, out = sys.argv[1:4]
    max_len = int(sys.argv[sys.argv.index("--max-len") + 1]) if "--max-len" in sys.argv else 256
    sentences = [line.rstrip("\r") for line in open(text, encoding="utf-8").read().split("\n") if line.strip(" \t\r")]
    e, _ = embed(model_dir, sentences, max_len)
    np.save(out, e)


if __name__ == "__main__":
    main()
