#!/usr/bin/env python3
"""Regenerates the llama.cpp golden files of the SmolLM2 tests (tests/golden/smollm2/), from the
peer built by ../shared/peers/build-llama-cpp.sh. Never run in CI (the peer takes ~15 min to build).

  python3 scripts/golden_smollm2.py PEER_BIN_DIR SMOLLM2_GGUF [MODELS_DIR]

  tokenize.json  ids from `llama-tokenize --ids` (special tokens parsed, its default) for every line
                 of tests/data/text/multilingual.txt, the whole file, and paragraphs of the
                 TinyStories excerpt in MODELS_DIR (../shared/models) when given
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
    p = subprocess.run(cmd, capture_output=True, **kw)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {p.stderr[-2000:]}")
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
    print(f"wrote {len(out)} tokenize and {len(gens)} generate items to {OUT}")


if __name__ == "__main__":
    main()
