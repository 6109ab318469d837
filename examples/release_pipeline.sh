#!/usr/bin/env bash
# A CI/CD release job for a fleet (docs/FLEET.md §7): one .slm per device profile, evaluated and
# gated, deltas from the release the devices run now, everything signed. Any failing step stops
# the pipeline with slm-compress's exit code (4: a gate failed, naming the profile and the figure;
# 3: bad input; 5: a file does not match its manifest or signature). Nothing is published unless
# every step passed.
#
#   RELEASE_KEY   path of the Ed25519 private key (from `slm-compress keygen`; a CI secret)
#   SOURCE        the trained model (safetensors directory, GGUF, llama2.c)
#   EVAL_TEXT     held-out text for KL / delta perplexity against the fp32 conversion
#   VERSION       this release's name (letters, digits, '.', '_', '-')
#   PREVIOUS      the manifest of the release in the field (optional: no deltas without it)
#   PUBLISH_DIR   where releases are published (one directory per release)
#   PROFILES      the fleet's device profiles (default: examples/profiles/*.json). Their "gates"
#                 (size, KL, delta perplexity, min decode tok/s) are the release's quality bar.
#   MAX_KL, MAX_DPPL, MIN_TOK_S  override every profile's gate when set (a number, or "off")
#   TOKENIZER     a tokenizer for sources without one (optional; as convert --tokenizer)
#   RELEASE_ARGS  more release options, split on spaces (optional; e.g. "--threads 1 --repetitions 5":
#                 decode rates of a loaded multi-threaded build machine say little about a device)
set -euo pipefail

SLM=${SLM:-slm-compress}
: "${RELEASE_KEY:?}" "${SOURCE:?}" "${EVAL_TEXT:?}" "${VERSION:?}" "${PUBLISH_DIR:?}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
profiles=()
for p in ${PROFILES:-"$here"/profiles/*.json}; do profiles+=(--profile "$p"); done
overrides=()
[[ -n "${MAX_KL:-}" ]] && overrides+=(--max-kl "$MAX_KL")
[[ -n "${MAX_DPPL:-}" ]] && overrides+=(--max-dppl "$MAX_DPPL")
[[ -n "${MIN_TOK_S:-}" ]] && overrides+=(--min-tok-s "$MIN_TOK_S")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

previous=()
if [[ -n "${PREVIOUS:-}" ]]; then
  # The release in the field must still be what was signed before deltas are made against it.
  "$SLM" verify "$PREVIOUS" --pubkey "$RELEASE_KEY"
  previous=(--previous "$PREVIOUS")
fi

# Convert, evaluate, time (bench --e2e's measurement, where a profile's ISA runs on this
# machine), gate by the profiles' gates (exit 4 fails the job), delta, sign: one command, one
# directory that appears only when complete.
# shellcheck disable=SC2086  # RELEASE_ARGS is a list of options
"$SLM" release "$SOURCE" "${profiles[@]}" --text "$EVAL_TEXT" "${overrides[@]}" ${RELEASE_ARGS:-} \
  --release "$VERSION" "${previous[@]}" --sign "$RELEASE_KEY" ${TOKENIZER:+--tokenizer "$TOKENIZER"} \
  -o "$work/$VERSION" --json > "$work/release.json"

# Check what will be published exactly as a device will: signature first, then every file
# (--pubkey accepts the private key file and uses its public half).
"$SLM" verify "$work/$VERSION/manifest.json" --pubkey "$RELEASE_KEY" --json > "$work/verify.json"

mkdir -p "$PUBLISH_DIR"
mv "$work/$VERSION" "$PUBLISH_DIR/$VERSION"
echo "published $PUBLISH_DIR/$VERSION"

# On a device (public key only), per its profile P, from release OLD to NEW:
#   slm-compress verify NEW/manifest.json --pubkey release.key.pub     # or the library's verify_manifest
#   slm-compress apply model.slm NEW/P.from-OLD.slmdelta -o model.next.slm --pubkey release.key.pub
#   mv model.next.slm model.slm                                         # rename: mapped readers keep the old inode
