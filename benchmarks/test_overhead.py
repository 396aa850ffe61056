"""Harness overhead (issue #4): bench's epoch loop vs bare framework loops, same model, optimizer and batches."""
from __future__ import annotations

import dataclasses
import importlib
import math
import statistics
from typing import Any, Callable, Iterator

import numpy as np
import pytest

from bench import data, measure, timing, transfer_run
from bench.imagefolder import Photos
from benchmarks import cases
from benchmarks.cases import Case, build, fixed_batch, harness_epoch, params

OVERHEAD_CASES = [Case("mnist_mlp"), Case("mnist_cnn"), Case("cats_vs_dogs", 0)]
WINDOW_S = 0.15  # aimed seconds per epoch window: short, so a pair sees the same machine state
MIN_STEPS, MAX_STEPS = 2, 64
BUDGET_S = 6.0  # aimed seconds of timed epochs per case: up to 21 rounds for MNIST, >= 5 for slow steps
MIN_ROUNDS, MAX_ROUNDS = 5, 21  # interleaved rounds of the three arms; overheads are medians of ratios
# A guard against gross regressions (a host sync or a copy of the data per step). The 2 % target is
# printed, not asserted: on the loaded 2-core dev machine jax-mnist_mlp, the fastest step, measured +8 to +20 %.
FAIL_ABOVE_PCT = 25.0


def epoch_source(case: Case, steps: int) -> Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]:
    """`steps` batches of fixed data, drawn the way the worker draws them (same order every call)."""
    n = steps * case.batch_size
    x, y = fixed_batch(case, n, stream=2)
    if not case.transfer:
        split = data.Split(x, y)
        return lambda: data.train_batches(split, cases.SEED, 0, case.batch_size)
    # The transfer loader gathers uint8 photos, flips and normalises each batch inside the clock.
    raw = np.random.default_rng((cases.SEED, 2, n)).integers(0, 256, (n, *case.spec.input_shape), dtype=np.uint8)
    photos = Photos(raw, y, files=[], classes=["cat", "dog"])
    task = dataclasses.replace(case.spec, batch_size=case.batch_size)
    return lambda: transfer_run.train_batches(photos, task, cases.SEED, 0)


@pytest.mark.parametrize(("fw", "case"), params(OVERHEAD_CASES))
def test_harness_overhead(benchmark, fw: str, case: Case) -> None:
    adapter = build(fw, case, cached=False)
    bare = importlib.import_module(f"impls.{fw}.bare")
    x, y = fixed_batch(case, case.batch_size)
    for _ in range(max(2, case.spec.measurement.warmup_steps)):  # compile before anything is timed
        t = measure.clock()
        adapter.train_step(x, y)
        adapter.sync()
    step_s = measure.clock() - t
    steps = max(MIN_STEPS, min(MAX_STEPS, round(WINDOW_S / step_s)))
    rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, round(BUDGET_S / (3 * steps * step_s))))
    batches = epoch_source(case, steps)
    made = list(batches())  # the same NumPy batches the harness will draw, made once
    prepared = bare.prepare(adapter, made)  # outside every clock: the bare loop's ideal input
    windows = timing.StepWindows(case.spec.measurement, adapter.sync)  # the worker's per-run step timing
    seconds: dict[str, list[float]] = {"harness": [], "bare": [], "converting": []}
    last: list[float] = []

    def timed(arm: str, run: Callable[[], Any]) -> None:
        t = measure.clock()
        loss = run()  # each arm's last loss comes back synced
        seconds[arm].append(measure.clock() - t)
        last.append(float(loss))

    def run_bare_arms() -> None:
        timed("bare", lambda: bare.train(adapter, prepared))
        # Also fed NumPy: the conversion to tensors that any loop over NumPy data pays, inside the clock.
        timed("converting", lambda: bare.train(adapter, bare.prepare(adapter, made)))

    def run_harness() -> float:
        elapsed, loss = harness_epoch(adapter, batches(), windows)
        seconds["harness"].append(elapsed)
        return float(loss)

    benchmark.group = "harness epoch (overhead)"
    # pedantic calls setup (the two bare epochs) before every timed harness epoch: B C A B C A ...,
    # so slow drift of the machine hits all arms alike; each ratio pairs arms of the same round.
    loss = benchmark.pedantic(run_harness, setup=run_bare_arms, rounds=rounds, warmup_rounds=1)
    assert math.isfinite(loss) and all(map(math.isfinite, last))
    if len(seconds["harness"]) > 1:  # the warm-up round is not a measurement
        seconds = {arm: s[1:] for arm, s in seconds.items()}
    h, b, c = seconds["harness"], seconds["bare"], seconds["converting"]
    samples = steps * case.batch_size
    row = {"framework": fw, "task": case.id, "steps": steps, "batch_size": case.batch_size, "rounds": len(h),
           "harness_samples_per_s": samples / statistics.median(h),
           "bare_samples_per_s": samples / statistics.median(b),
           "overhead_pct": 100 * (statistics.median(x / y for x, y in zip(h, b)) - 1),
           "overhead_vs_converting_pct": 100 * (statistics.median(x / y for x, y in zip(h, c)) - 1)}
    cases.OVERHEAD_ROWS.append(row)
    benchmark.extra_info.update(row)
    if len(h) >= 3:
        assert row["overhead_pct"] < FAIL_ABOVE_PCT, f"harness overhead {row['overhead_pct']:.1f} % (target 2 %)"
