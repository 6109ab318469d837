#!/usr/bin/env bash
# Installs every Debian 12 package that the build, the tests and the benchmarks need.
# Idempotent: when every package is already installed it touches nothing (no apt-get update).
# Usage: scripts/setup.sh [--arm64] [--fuzz]
#   --arm64 adds the cross compiler and qemu-user; --fuzz adds clang and libFuzzer (make fuzz-smoke)
set -euo pipefail

packages=(
  cmake g++ make pkg-config
  libeigen3-dev libflatbuffers-dev flatbuffers-compiler libxsimd-dev
  catch2 libbenchmark-dev nlohmann-json3-dev libcli11-dev libxxhash-dev
  libssl-dev libzstd-dev libopenblas-dev libomp-dev python3 python3-venv python3-pip
)
arm64=0
if [[ "${1:-}" == "--arm64" ]]; then
  arm64=1
  # Cross compiler, emulator, and the arm64 builds of the compiled libraries slmc links
  # (Debian multiarch: the host and arm64 -dev packages install side by side).
  packages+=(g++-aarch64-linux-gnu qemu-user libssl-dev:arm64 libzstd-dev:arm64)
fi
if [[ " $* " == *" --fuzz "* ]]; then
  packages+=(clang-14 libclang-rt-14-dev)   # libFuzzer + sanitizers for make fuzz-smoke
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
if ((arm64)) && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
