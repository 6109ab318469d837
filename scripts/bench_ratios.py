#!/usr/bin/env python3
"""Same-run kernel ratios on a shared, noisy machine.

Runs slmc_bench ROUNDS times over the same filter (each round: --benchmark_repetitions=REPS), so
that every case is sampled throughout the run rather than in one burst, then prints per case the
fastest and the median repetition (real time) and the requested ratios for both statistics.

Other tenants of a machine only ever add time: the fastest repetition is what the code can do, the
median what a user will typically see. Quote both; a ratio that holds only for one is not settled.

  scripts/bench_ratios.py --bench build/benchmarks/slmc_bench --rounds 5 \\
      --filter '^linear/(int8_channel_sym_f32|nm2of4_int8_s50)/int8/8192x8192/n:1/omp:1/' \\
      --ratio '2:4 vs dense=linear/int8_channel_sym_f32/int8/8192x8192/n:1/omp:1:linear/nm2of4_int8_s50/int8/8192x8192/n:1/omp:1'

A ratio is NAME=BASE:CASE and prints time(BASE) / time(CASE), i.e. how many times faster CASE is.
A fraction (--fraction NAME=ROOFLINE:CASE) prints GB/s(CASE) / GB/s(ROOFLINE), each case's GB/s
being its bytes per iteration (weight_GBps or GBps counter x time) over the statistic's time.
Exit status: 0, or 2 on a bad argument, a failed benchmark run or a ratio naming an absent case.
"""
import argparse
import json
import re
import statistics
import subprocess
import sys


def die(msg):
    print(f"bench_ratios: {msg}", file=sys.stderr)
    sys.exit(2)


def run_round(bench, flt, reps):
    cmd = [bench, f"--benchmark_filter={flt}", f"--benchmark_repetitions={reps}", "--benchmark_format=json"]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as e:
        die(f"cannot run {bench}: {e.strerror} (build it: cmake --build build --target slmc_bench)")
    if proc.returncode != 0:
        die(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    if not proc.stdout.strip():
        die(f"no case matches {flt!r} ({proc.stderr.strip()[-200:]})")
    out = json.loads(proc.stdout)
    times, nbytes = {}, {}
    for b in out["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        if b.get("error_occurred"):
            die(f"{b['run_name']}: {b.get('error_message', 'error')}")
        name = b["run_name"].removesuffix("/real_time")
        scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
        t_ms = b["real_time"] * scale
        times.setdefault(name, []).append(t_ms)
        rate = b.get("weight_GBps", b.get("GBps"))
        if rate is not None:
            nbytes[name] = rate * 1e9 * t_ms / 1e3
    return out.get("context", {}), times, nbytes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default="build/benchmarks/slmc_bench")
    ap.add_argument("--filter", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--ratio", action="append", default=[], help="NAME=BASE_CASE:CASE (case names without /real_time)")
    ap.add_argument("--fraction", action="append", default=[], help="NAME=ROOFLINE_CASE:CASE (GB/s ratio)")
    ap.add_argument("--json", help="write the per-case samples and statistics here")
    args = ap.parse_args()
    if args.rounds < 1 or args.repetitions < 1:
        ap.error("--rounds and --repetitions must be at least 1")
    def parse_pairs(specs, opt):
        pairs = []
        for spec in specs:
            # NAME may contain '=' and case names contain ':' (n:1, omp:1): split at the '=' and the
            # ':' that start a case name.
            m = re.match(r"^(.+)=((?:linear|baseline|membw)/.+?):((?:linear|baseline|membw)/.+)$", spec)
            if not m:
                ap.error(f"{opt} {spec!r}: expected NAME=BASE_CASE:CASE")
            pairs.append(m.groups())
        return pairs

    ratios = parse_pairs(args.ratio, "--ratio")
    fractions = parse_pairs(args.fraction, "--fraction")

    samples, context, nbytes = {}, {}, {}
    for _ in range(args.rounds):
        context, times, nb = run_round(args.bench, args.filter, args.repetitions)
        nbytes.update(nb)
        for k, v in times.items():
            samples.setdefault(k, []).extend(v)
    if not samples:
        die(f"no case matches {args.filter!r}")

    stats = {k: {"min_ms": min(v), "median_ms": statistics.median(v), "n": len(v)} for k, v in samples.items()}
    for k, s in stats.items():
        if k in nbytes:
            s["GBps_fastest"] = nbytes[k] / s["min_ms"] / 1e6
            s["GBps_median"] = nbytes[k] / s["median_ms"] / 1e6
    print(f"# {context.get('cpu_brand', '?')} | slmc {context.get('slmc_version', '?')} | isa {context.get('slmc_isa', '?')} | "
          f"{args.rounds} rounds x {args.repetitions} repetitions, real time")
    width = max(len(k) for k in stats)
    print(f"{'case':{width}}  {'min ms':>10}  {'median ms':>10}  {'GB/s':>13}  n")
    for k in sorted(stats):
        s = stats[k]
        gbps = f"{s['GBps_fastest']:6.2f} {s['GBps_median']:6.2f}" if "GBps_fastest" in s else ""
        print(f"{k:{width}}  {s['min_ms']:10.4g}  {s['median_ms']:10.4g}  {gbps:>13}  {s['n']}")
    results = []
    for name, base, case in ratios:
        for c in (base, case):
            if c not in stats:
                die(f"ratio {name!r}: no case {c!r} in this run")
        r_min = stats[base]["min_ms"] / stats[case]["min_ms"]
        r_med = stats[base]["median_ms"] / stats[case]["median_ms"]
        results.append({"name": name, "base": base, "case": case, "ratio_min": r_min, "ratio_median": r_med})
        print(f"ratio {name}: {r_min:.2f}x (fastest)  {r_med:.2f}x (median)")
    for name, roof, case in fractions:
        for c in (roof, case):
            if c not in stats or "GBps_fastest" not in stats[c]:
                die(f"fraction {name!r}: no case {c!r} with a GB/s counter in this run")
        f_min = stats[case]["GBps_fastest"] / stats[roof]["GBps_fastest"]
        f_med = stats[case]["GBps_median"] / stats[roof]["GBps_median"]
        results.append({"name": name, "roofline": roof, "case": case, "fraction_min": f_min, "fraction_median": f_med})
        print(f"fraction {name}: {100 * f_min:.0f}% (fastest)  {100 * f_med:.0f}% (median)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"context": context, "samples_ms": samples, "stats": stats, "ratios": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
