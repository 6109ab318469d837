#!/usr/bin/env bash
# Cross-builds slmc for aarch64 and runs the whole ctest suite under qemu-aarch64, once on a CPU
# model with the dot-product extension (QEMU_CPU=max) and once without it (cortex-a53), so both
# NEON kernel paths run. Emulation proves correctness, not speed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --arm64
build=${BUILD_DIR:-build-arm64}
jobs=${JOBS:-$(nproc)}
cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
  -DCMAKE_BUILD_TYPE=Release -DSLMC_BUILD_BENCHMARKS=OFF > "$build.configure.log" || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j "$jobs"
# Passive OpenMP waiting: spinning threads are very slow under user-mode emulation.
export OMP_WAIT_POLICY=PASSIVE
# Guest libc from the cross toolchain for binaries qemu starts outside ctest's emulator line (the
# CLI tests): mixing it with the host's libc6:arm64 makes thread creation hang.
export QEMU_SET_ENV=LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib
status=0
for cpu in max cortex-a53; do
  echo "== ctest under qemu-aarch64 -cpu $cpu"
  (cd "$build" && QEMU_CPU=$cpu ctest --output-on-failure -j "$jobs" -E slmc_install_consumer) || status=1
done
exit $status
