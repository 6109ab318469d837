#!/usr/bin/env python3
"""Regenerates the llama.cpp golden files of the SmolLM2 tests (tests/golden/smollm2/), from the
peer built by ../shared/peers/build-llama-cpp.sh. Never run in CI (the peer takes ~15 min to build).

  python3 scripts/golden_smollm2.py PEER_BIN_DIR SMOLLM2_GGUF [MODELS_DIR]

  tokenize.json  ids from `llama-tokenize --ids` (special tokens parsed, its default) for every line
                 of tests/data/text/multilingual.txt, the whole file, and paragraphs of the
                 TinyStories excerpt in MODELS_DIR (../shared/models) when given
  tokenize_default.json  the same texts and 200 random strings through llama.cpp's "default"
                 pre-tokenizer (the SmolLM2 vocabulary in a GGUF written with the gguf package,
                 tokenizer.ggml.pre = "default"); run this script with the venv's python
                 (~/.cache/slmc/venv/bin/python) for that file
  perplexity.json  llama-perplexity's running perplexity after each 512-token chunk of the held-out
                 text real_tests.llamacpp_protocol_text(MODELS_DIR) on that F32 GGUF (-c 512 -b 512)
  generate.json  greedy continuations (`llama-completion --temp 0 -n 48 -no-cnv`, no chat template,
                 no BOS: the tokenizer adds none) of every line of prompts.txt, from the F32 GGUF
                 that `llama-quantize --allow-requantize SMOLLM2_GGUF F32.gguf F32` writes
Each file records the commands that made it."""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "tests", "golden", "smollm2")


def run(cmd, **kw):
    kw.setdefault("stderr", subprocess.PIPE)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, **kw)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {(p.stderr or p.stdout)[-2000:]}")
    return p.stdout


def main():
    bin_dir, gguf = sys.argv[1], sys.argv[2]
    models = sys.argv[3] if len(sys.argv) > 3 else None
    texts = open(os.path.join(ROOT, "tests/data/text/multilingual.txt"), encoding="utf-8").read()
    items = [line for line in texts.split("\n") if line] + [texts]
    if models:
        story = open(os.path.join(models, "tinystories-valid-excerpt/tinystories_val.txt"), encoding="utf-8").read()
        paras = [p.strip() for p in story.split("\n\n") if p.strip()]
        items += paras[-12:]
    tok_cmd = [os.path.join(bin_dir, "llama-tokenize"), "-m", gguf, "--ids", "--no-escape", "--log-disable", "-f"]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for text in items:
            path = os.path.join(tmp, "t.txt")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            ids = json.loads(run(tok_cmd + [path]).decode().strip().splitlines()[-1])
            out.append({"text": text, "ids": ids})
        with open(os.path.join(OUT, "tokenize.json"), "w", encoding="utf-8") as fh:
            json.dump({"command": " ".join([os.path.basename(tok_cmd[0])] + ["-m", os.path.basename(gguf), "--ids", "--no-escape", "--log-disable",
                                                          "-f", "TEXT_FILE"]),
                       "items": out}, fh, ensure_ascii=False, indent=1)

        try:
            import numpy as np
            from gguf import GGUFReader, GGUFWriter
            sys.path.insert(0, os.path.join(ROOT, "tests", "real"))
            import real_tests
        except ImportError:
            print("gguf/numpy not importable: tokenize_default.json not regenerated")
        else:
            r = GGUFReader(gguf)

            def strings(name):
                f = r.fields[name]
                return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

            toks, merges = strings("tokenizer.ggml.tokens"), strings("tokenizer.ggml.merges")
            types = [int(r.fields["tokenizer.ggml.token_type"].parts[i][0]) for i in r.fields["tokenizer.ggml.token_type"].data]
            dpath = os.path.join(tmp, "default-pre.gguf")
            w = GGUFWriter(dpath, "llama")
            w.add_block_count(1); w.add_context_length(512); w.add_embedding_length(32); w.add_feed_forward_length(64)
            w.add_head_count(1); w.add_head_count_kv(1); w.add_layer_norm_rms_eps(1e-5); w.add_vocab_size(len(toks))
            w.add_tokenizer_model("gpt2"); w.add_tokenizer_pre("default"); w.add_token_list(toks)
            w.add_token_types(types); w.add_token_merges(merges); w.add_bos_token_id(1); w.add_eos_token_id(2)
            w.add_add_bos_token(False)
            w.add_tensor("token_embd.weight", np.zeros((len(toks), 32), dtype=np.float32))
            w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
            dcmd = [tok_cmd[0], "-m", dpath] + tok_cmd[3:]
            dout = []
            for text in [it["text"] for it in out] + [t for t in real_tests.random_texts(200, seed=29) if t]:
                path = os.path.join(tmp, "t.txt")
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(text)
                ids = json.loads(run(dcmd + [path]).decode().strip().splitlines()[-1])
                dout.append({"text": text, "ids": ids})
            with open(os.path.join(OUT, "tokenize_default.json"), "w", encoding="utf-8") as fh:
                json.dump({"command": "llama-tokenize -m SMOLLM2-VOCAB-PRE-DEFAULT.gguf --ids --no-escape --log-disable -f TEXT_FILE",
                           "items": dout}, fh, ensure_ascii=False, indent=1)

        f32 = os.path.join(tmp, "smollm2-f32.gguf")
        q_cmd = [os.path.join(bin_dir, "llama-quantize"), "--allow-requantize", gguf, f32, "F32"]
        run(q_cmd)
        gens = []
        prompts = open(os.path.join(OUT, "prompts.txt"), encoding="utf-8").read().split("\n")
        for prompt in [p for p in prompts if p]:
            g_cmd = [os.path.join(bin_dir, "llama-completion"), "-m", f32, "-p", prompt, "-n", "48", "--temp", "0",
                     "-no-cnv", "--no-display-prompt", "--simple-io", "--no-warmup", "--no-escape", "-t", "2", "--seed", "1"]
            text = run(g_cmd, stdin=subprocess.DEVNULL).decode("utf-8", errors="replace")
            ended = text.rstrip().endswith("[end of text]")
            if ended:
                text = text.rstrip()[: -len("[end of text]")].rstrip(" ")
            gens.append({"prompt": prompt, "continuation": text, "ended": ended})
        with open(os.path.join(OUT, "generate.json"), "w", encoding="utf-8") as fh:
            json.dump({"commands": [" ".join([os.path.basename(q_cmd[0])] + q_cmd[1:2] + ["SMOLLM2.gguf", "F32.gguf", "F32"]),
                                    "llama-completion -m F32.gguf -p PROMPT -n 48 --temp 0 -no-cnv "
                                    "--no-display-prompt --simple-io --no-warmup --no-escape -t 2 --seed 1"],
                       "peer": "llama.cpp vendored in llama-cpp-python 0.3.36 (../shared/peers/build-llama-cpp.sh)",
                       "items": gens}, fh, ensure_ascii=False, indent=1)
        if models:
            sys.path.insert(0, os.path.join(ROOT, "tests", "real"))
            import real_tests
            tpath = os.path.join(tmp, "heldout.txt")
            with open(tpath, "w", encoding="utf-8") as fh:
                fh.write(real_tests.llamacpp_protocol_text(models))
            p_cmd = [os.path.join(bin_dir, "llama-perplexity"), "-m", f32, "-f", tpath, "-c", "512", "-b", "512", "-t", "2"]
            log = run(p_cmd, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT).decode("utf-8", errors="replace")
            import re
            running = [float(v) for v in re.findall(r"\[\d+\]([0-9.]+),", log)]
            final = float(re.search(r"Final estimate: PPL = ([0-9.]+)", log).group(1))
            with open(os.path.join(OUT, "perplexity.json"), "w", encoding="utf-8") as fh:
                json.dump({"commands": [" ".join([os.path.basename(q_cmd[0])] + q_cmd[1:2] + ["SMOLLM2.gguf", "F32.gguf", "F32"]),
                                        "llama-perplexity -m F32.gguf -f HELDOUT.txt -c 512 -b 512 -t 2"],
                           "text": "real_tests.llamacpp_protocol_text(../shared/models)",
                           "peer": "llama.cpp vendored in llama-cpp-python 0.3.36 (../shared/peers/build-llama-cpp.sh)",
                           "running_perplexity": running, "final_perplexity": final}, fh, indent=1)
    print(f"wrote {len(out)} tokenize and {len(gens)} generate items to {OUT}")


if __name__ == "__main__":
    main()
