#!/usr/bin/env python3
"""ctest slmc_isa_ran:<isa>: exit 0 when this CPU runs kernels of ISA (so the kernel tests, which
loop over runnable_isas(), ran them), the skip code when it cannot.
  usage: isa_ran.py SLM_COMPRESS ISA SKIP_CODE [EMULATOR ...]   (a cross build runs the binary
  behind its emulator, e.g. qemu-aarch64 with QEMU_CPU choosing the CPU model)"""
import json
import subprocess
import sys

slm, isa, skip, emulator = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
info = json.loads(subprocess.run([*emulator, slm, "info", "--json"], check=True, capture_output=True,
                                 text=True).stdout)
if isa in info["isa"]["runnable"]:
    print(f"{isa}: runnable on this CPU ({info['cpu']['brand']}); the kernel tests ran it")
    sys.exit(0)
print(f"{isa}: compiled, but this CPU ({info['cpu']['features']}) cannot run it: not tested here")
sys.exit(skip)
