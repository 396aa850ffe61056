"""Power and false alarms of `bench ab`'s gate, measured on this machine (a benchmark script, not a test).

Three sides run in interleaved rounds (the order rotates every round): A and A2, the same code and
interpreter, and B, the same again with a real slowdown of one framework's step (BENCH_TEST_SLOWDOWN:
a calibrated busy-wait, bench/harness/slowdown.py). Every window of n consecutive rounds is one trial:
the gate on A vs B should fail (detection), the gate on A vs A2 should pass (a failure is a false alarm).

    python benchmarks/ab_power.py --rounds 48 --trial-rounds 8,10,12,16,20,24 --out results/ab-power
    python benchmarks/ab_power.py --resample results/ab-power --trial-rounds 10,20,30,40 --family 12

print the tables of docs/regression.md (measured trials; then power resampled from the measured A/A rounds)
and write the records and a JSON summary to --out.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from bench import records
from bench.records import paired
from bench.runner import ab

SLOW = "BENCH_TEST_SLOWDOWN"


def measure(args: argparse.Namespace) -> list[records.Record]:
    py = f"{args.framework}={sys.executable}"
    sides = (ab.Side("A", py, pythons=py), ab.Side("A2", py, pythons=py),
             ab.Side("B", py, pythons=py, env=((SLOW, f"{args.framework}={args.slowdown}"),)))
    cfg = ab.ABConfig((sides[0], sides[2]), args.rounds, ("--task", args.task, "--framework", args.framework,
                      "--profile", args.profile), 0, args.out.resolve(), "ab-power")
    recs, start = [], time.monotonic()
    for k in range(args.rounds):
        turn = sides[k % 3:] + sides[:k % 3]
        for side in (turn if k % 2 == 0 else turn[::-1]):
            recs += ab.run_side(cfg, side, ab.ROOT, k)
        print(f"round {k + 1}/{args.rounds} done, {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    records.append(args.out / records.RECORDS_FILE, recs)
    return recs


def step_flagged_in_family(pair: list[records.Record], threshold: float, family: int) -> bool:
    """The step verdict had the gate corrected for `family` tests (Bonferroni: Holm's strictest step), as in
    a run of more cells: past the threshold and p * family < alpha."""
    a = {r.repeat: r.steady_step_s for r in pair if r.side == "A" and r.status == "ok"}
    diffs = [math.log(r.steady_step_s / a[r.repeat]) for r in pair
             if r.side == "B" and r.status == "ok" and a.get(r.repeat) and r.steady_step_s]
    est = 100 * math.expm1(statistics.median(diffs))
    return est > threshold and paired.p_worse(diffs, "up") * family < paired.ALPHA


def trials(recs: list[records.Record], other: str, n: int, thresholds: dict[str, float],
           family: int) -> tuple[int, int, int, int]:
    """(trials, gate failures, failures on the step metric, step failures corrected for `family` tests) over
    every window of n consecutive rounds."""
    rounds = sorted({r.repeat for r in recs})
    fails = step_fails = family_fails = 0
    windows = [rounds[s:s + n] for s in range(len(rounds) - n + 1)]
    for window in windows:
        pair = [r if r.side == "A" else replace(r, side="B") for r in recs
                if r.repeat in window and r.side in ("A", other)]
        rows, _ = paired.gate(pair, thresholds)
        bad = [r for r in rows if r.mark in paired.REGRESSIONS]
        fails += bool(bad)
        step_fails += any(r.metric == "step" for r in bad)
        family_fails += step_flagged_in_family(pair, thresholds["step"], family)
    return len(windows), fails, step_fails, family_fails


def resampled(folders: list[Path], effects: list[float], ns: list[int], family: int, draws: int = 300) -> None:
    """Power from the measured A/A noise: n per-round A2/A log ratios drawn with replacement from every
    round measured (all folders), each with a random sign, shifted by a known effect; the step judged as
    the gate does, its p-value multiplied by `family` (Holm's strictest step: m tests as in m / 4 cells)."""
    import random

    noise = []
    for folder in folders:
        recs, _ = records.read_file(folder / records.RECORDS_FILE)
        a = {r.repeat: r.steady_step_s for r in recs if r.side == "A" and r.steady_step_s}
        noise += [math.log(r.steady_step_s / a[r.repeat]) for r in recs
                  if r.side == "A2" and r.steady_step_s and r.repeat in a]
    rng = random.Random(0)
    print(f"\nresampled from {len(noise)} measured A/A rounds (sd of the log ratio {statistics.stdev(noise):.3f}), "
          f"{draws} trials each, {family} tests:\n")
    print("| rounds | " + " | ".join(f"found {100 * e:g} %" for e in effects) + " | A/A false alarms |")
    print("|---:|" + "---:|" * (len(effects) + 1))
    for n in ns:
        found = []
        for e in [*effects, 0.0]:
            hits = 0
            for _ in range(draws):
                # identical sides are exchangeable, so under no effect d and -d are equally likely:
                # a random sign keeps the measured spread and drops the sample's chance lean
                d = [rng.choice((-1, 1)) * x + math.log1p(e) for x in rng.choices(noise, k=n)]
                est = 100 * math.expm1(statistics.median(d))
                hits += est > paired.METRICS["step"].threshold and paired.p_worse(d, "up") * family < paired.ALPHA
            found.append(f"{100 * hits / draws:.0f} %")
        print(f"| {n} | " + " | ".join(found) + " |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=36)
    p.add_argument("--trial-rounds", default="4,6,8,10,12")
    p.add_argument("--slowdown", type=float, default=0.10)
    p.add_argument("--task", default="mnist_mlp")
    p.add_argument("--framework", default="torch")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--out", type=Path, default=Path("results/ab-power"))
    p.add_argument("--reuse", action="store_true", help="evaluate the records already in --out")
    p.add_argument("--resample", type=Path, nargs="*", default=None, metavar="FOLDER",
                   help="instead: power by resampling the A/A rounds of these earlier --out folders")
    p.add_argument("--family", type=int, default=24,
                   help="also judge the step as if corrected for this many tests (default 24: the pull-request "
                        "workflow's 6 cells x 4 metrics)")
    args = p.parse_args()
    if args.resample:
        ns = list(map(int, args.trial_rounds.split(",")))
        for family in (4, args.family):
            resampled(args.resample, [0.05, 0.10, 0.20], ns, family)
        return 0
    if args.reuse:
        recs, _ = records.read_file(args.out / records.RECORDS_FILE)
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        recs = measure(args)
    thresholds = paired.parse_thresholds(None)
    side_wall = statistics.median(r.wall_time_s for r in recs if r.wall_time_s)
    ratios = [b.steady_step_s / a.steady_step_s for a in recs for b in recs if a.side == "A" and b.side == "B"
              and a.repeat == b.repeat and a.steady_step_s and b.steady_step_s]
    print(f"\n{args.task}/{args.framework} {args.profile}, B slowed by {100 * args.slowdown:g} %, "
          f"{len({r.repeat for r in recs})} rounds; measured B/A step ratio: median {statistics.median(ratios):.3f}, "
          f"range {min(ratios):.3f}-{max(ratios):.3f}; one side's worker {side_wall:.1f} s (median)\n")
    print(f"| rounds per trial | trials | A/B: gate fails (on step) | A/A: false alarms | step found, {args.family} "
          f"tests | A/A alarms on step, {args.family} tests | one cell's worker time per trial |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    summary = []
    for n in map(int, args.trial_rounds.split(",")):
        t, fails, step, fam = trials(recs, "B", n, thresholds, args.family)
        t0, alarms, _, fam0 = trials(recs, "A2", n, thresholds, args.family)
        summary.append({"n": n, "trials": t, "detected": fails, "detected_step": step, "false_alarms": alarms,
                        "detected_family": fam, "false_alarms_family": fam0, "family": args.family})
        print(f"| {n} | {t} | {100 * fails / t:.0f} % ({100 * step / t:.0f} %) | {100 * alarms / t0:.0f} % | "
              f"{100 * fam / t:.0f} % | {100 * fam0 / t0:.0f} % | {2 * n * side_wall / 60:.1f} min |")
    (args.out / "power.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
