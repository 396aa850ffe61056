"""Power and false alarms of `bench ab`'s gate, measured on this machine (a benchmark script, not a test).

Three sides run in interleaved rounds (the order rotates every round): A and A2, the same code and
interpreter, and B, the same again with a real slowdown of one framework's step (BENCH_TEST_SLOWDOWN:
a calibrated busy-wait, bench/harness/slowdown.py). Every window of n consecutive rounds is one trial:
the gate on A vs B should fail (detection), the gate on A vs A2 should pass (a failure is a false alarm).

    python benchmarks/ab_power.py --rounds 36 --trial-rounds 4,6,8,10,12 --out results/ab-power

prints the table of docs/regression.md and writes the records and a JSON summary to --out.
"""
from __future__ import annotations

import argparse
import json
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


def trials(recs: list[records.Record], other: str, n: int, thresholds: dict[str, float]) -> tuple[int, int, int]:
    """(trials, gate failures, failures on the step metric) over every window of n consecutive rounds."""
    rounds = sorted({r.repeat for r in recs})
    fails = step_fails = 0
    windows = [rounds[s:s + n] for s in range(len(rounds) - n + 1)]
    for window in windows:
        pair = [r if r.side == "A" else replace(r, side="B") for r in recs
                if r.repeat in window and r.side in ("A", other)]
        rows, _ = paired.gate(pair, thresholds)
        bad = [r for r in rows if r.mark in paired.REGRESSIONS]
        fails += bool(bad)
        step_fails += any(r.metric == "step" for r in bad)
    return len(windows), fails, step_fails


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
    args = p.parse_args()
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
    print("| rounds per trial | trials | A/B: gate fails (step) | A/A: false alarms | worker time per trial |")
    print("|---:|---:|---:|---:|---:|")
    summary = []
    for n in map(int, args.trial_rounds.split(",")):
        t, fails, step = trials(recs, "B", n, thresholds)
        t0, alarms, _ = trials(recs, "A2", n, thresholds)
        summary.append({"n": n, "trials": t, "detected": fails, "detected_step": step, "false_alarms": alarms})
        print(f"| {n} | {t} | {100 * fails / t:.0f} % ({100 * step / t:.0f} %) | {100 * alarms / t0:.0f} % | "
              f"{2 * n * side_wall / 60:.1f} min |")
    (args.out / "power.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
