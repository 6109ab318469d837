#!/usr/bin/env python3
"""Derives the nl4 code book (kNl4Levels, include/slmc/layout.hpp; docs/QUANT.md, "nl4").

  usage: ~/.cache/slmc/venv/bin/python scripts/nl4_codebook.py [--iterations 25]

Lloyd iterations on 60,000 random groups of 32 from the linear weights of all-MiniLM-L6-v2
(fp32, never quantized; fetched by `make models`), starting from the uniform grid -8..7:
  1. per group, the scale: the trials d = m / end * f (m the largest-magnitude weight, end = the
     lowest or highest level, 16 fractions f), each refit twice by least squares (three times when scoring a table), fp16-rounded;
     the one with the smallest squared error wins;
  2. each level moves to the least-squares value of the weights coded to it (sum d*w / sum d^2);
  3. levels are renormalized so the lowest is -127.
The integer table printed at the end is the rounded result, with its relative error; it is then
checked on capp-gpt2 (../shared/models), which it never saw. Takes ~5 minutes on one core.
"""
import argparse
import os

import numpy as np
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def groups_of(path, skip=("embeddings", "wte", "wpe")):
    w = load_file(path)
    mats = [v for k, v in w.items() if v.ndim == 2 and v.size % 32 == 0 and not any(s in k for s in skip)]
    return np.concatenate([m.reshape(-1, 32) for m in mats]).astype(np.float64)


def quant(G, T, fracs=np.linspace(0.6, 1.1, 16), refine=2):
    """Per-group scale search with the levels T; returns squared errors and scales."""
    m = G[np.arange(len(G)), np.argmax(np.abs(G), axis=1)]
    best_err = np.full(len(G), np.inf)
    best_d = np.zeros(len(G))
    mids = (T[1:] + T[:-1]) / 2
    for end in (T[-1], T[0]):
        for f in fracs:
            d = m / end * f
            d[d == 0] = 1e-30
            for _ in range(refine):
                q = T[np.searchsorted(mids, G / d[:, None])]
                num, den = (G * q).sum(1), (q * q).sum(1)
                dn = np.where(den > 0, num / np.maximum(den, 1e-300), d)
                d = np.where(dn != 0, dn, d)
            d = d.astype(np.float16).astype(np.float64)
            q = T[np.searchsorted(mids, G / d[:, None])]
            err = ((G - d[:, None] * q) ** 2).sum(1)
            better = err < best_err
            best_err = np.where(better, err, best_err)
            best_d = np.where(better, d, best_d)
    return best_err, best_d


def rel_error(G, T):
    e, _ = quant(G, np.sort(np.asarray(T, float)), refine=3)
    return float(np.sqrt(e.sum() / (G ** 2).sum()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=25)
    args = ap.parse_args()
    cache = os.environ.get("SLMC_CACHE_DIR", os.path.expanduser("~/.cache/slmc"))
    G = groups_of(os.path.join(cache, "models", "minilm", "model.safetensors"))
    G = G[np.random.default_rng(0).choice(len(G), 60000, replace=False)]
    T = np.arange(-8, 8).astype(float)
    print("uniform -8..7: rel. error", rel_error(G, T))
    for it in range(args.iterations):
        _, d = quant(G, T)
        idx = np.searchsorted((T[1:] + T[:-1]) / 2, G / d[:, None])
        dd = np.broadcast_to(d[:, None], G.shape)
        new = T.copy()
        for j in range(16):
            mask = idx == j
            if mask.any():
                new[j] = (dd[mask] * G[mask]).sum() / (dd[mask] ** 2).sum()
        T = np.sort(new) / np.abs(new).max() * 127
    Ti = np.round(T)
    print("code book", Ti.astype(int).tolist(), "rel. error", rel_error(G, Ti))
    models = os.environ.get("SLMC_MODELS_DIR", os.path.join(ROOT, "..", "shared", "models"))
    G2 = groups_of(os.path.join(models, "capp-gpt2-236K", "model.safetensors"))
    print("capp-gpt2 (unseen): uniform", rel_error(G2, np.arange(-8, 8)), "code book", rel_error(G2, Ti))


if __name__ == "__main__":
    main()
