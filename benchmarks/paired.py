"""Interleaved A/B epochs for the protocol benchmarks: the same batches through two ways of running an
epoch, the arms' order alternating per round, a median ratio with a bootstrap CI, printed as a table."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from bench import data
from bench.harness import loop, timing
from benchmarks import cases
from benchmarks.cases import Case, fixed_batch

WINDOW_S = 0.4  # seconds per epoch: one round's arms see the same machine state
MIN_STEPS, MAX_STEPS, MIN_ROUNDS, MAX_ROUNDS = 4, 128, 8, 300
ROWS: list[dict[str, Any]] = []  # filled by test_protocol_cost.py, printed by conftest.py


def split(case: Case, steps: int) -> data.Split:
    """`steps` batches of fixed data in the harness's form (photos: uint8, normalised per batch)."""
    n = steps * case.batch_size
    x, y = fixed_batch(case, n, stream=3)
    if case.photos:
        x = np.random.default_rng((cases.SEED, 3, n)).integers(0, 256, (n, *case.spec.input_shape), dtype=np.uint8)
    return data.Split(x, y)


def epoch(adapter: Any, case: Case, s: data.Split, resident: bool, windows: bool) -> float:
    """One epoch as the worker runs it (resident or host input), with or without the step windows."""
    task = case.spec
    bs = case.batch_size
    if resident:
        steps = loop.resident_steps(adapter, data.train_order(s, cases.SEED, 0, bs), bs)
    else:
        batch_task = dataclasses.replace(task, batch_size=bs)
        steps = loop.host_steps(adapter, data.train_batches(batch_task, s, cases.SEED, 0),
                                task.measurement.prefetch(cases.DEVICE))
    hook = timing.StepWindows(task.measurement, adapter.sync) if windows else None
    seconds, losses = loop.train_epoch(adapter, steps, hook)
    if not math.isfinite(float(losses[-1])):  # after the clock: reading the loss syncs
        raise AssertionError(f"{case.id}: the epoch's last loss is {float(losses[-1])}")
    return seconds


def sized(step_s: float, disabled: bool = False) -> tuple[int, int]:
    """(steps per epoch, rounds) for ~WINDOW_S epochs within the overhead budget; one round when
    pytest-benchmark is disabled (a check that the case runs, not a measurement)."""
    steps = max(MIN_STEPS, min(MAX_STEPS, round(WINDOW_S / step_s)))
    rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, round(cases.OVERHEAD_BUDGET_S / (2 * steps * step_s))))
    return steps, 1 if disabled else rounds


def run(arms: dict[Any, Callable[[], float]], rounds: int) -> dict[Any, np.ndarray]:
    """Each arm's epoch seconds per round, after one untimed round; the order flips every round."""
    names = list(arms)
    seconds: dict[Any, list[float]] = {n: [] for n in names}
    for r in range(rounds + 1):
        for name in names[:: 1 if r % 2 == 0 else -1]:
            t = arms[name]()
            if r:
                seconds[name].append(t)
    return {n: np.array(v) for n, v in seconds.items()}


def row(what: str, fw: str, case: Case, steps: int, a: np.ndarray, b: np.ndarray) -> dict:
    """The A/B row of one case: median epoch times, the median paired ratio and its 95 % CI."""
    low, high = cases.median_ci(a / b)
    out = {"comparison": what, "framework": fw, "task": case.id, "steps": steps, "rounds": len(a),
           "a_ms": 1e3 * float(np.median(a)), "b_ms": 1e3 * float(np.median(b)),
           "pct": 100 * (float(np.median(a / b)) - 1), "ci_pct": (100 * (low - 1), 100 * (high - 1))}
    ROWS.append(out)
    return out


def table() -> list[str]:
    lines = [f"{'comparison':<28} {'framework':<9} {'task':<32} {'A ms':>9} {'B ms':>9} {'A/B - 1':>9} "
             f"{'95 % CI':>17} {'rounds':>6}"]
    for r in ROWS:
        lo, hi = r["ci_pct"]
        lines.append(f"{r['comparison']:<28} {r['framework']:<9} {r['task']:<32} {r['a_ms']:>9.1f} {r['b_ms']:>9.1f} "
                     f"{r['pct']:>+8.2f}% {f'[{lo:+.2f}, {hi:+.2f}] %':>17} {r['rounds']:>6}")
    if any(r["rounds"] < 3 for r in ROWS):
        lines.append("fewer than 3 rounds (--benchmark-disable?): these figures are not measurements")
    lines.append("A/B - 1: median over rounds of the paired epoch-time ratio; A and B alternate in order every round. "
                 "windows on/off: A = epoch with the step-window syncs inside, B = without (what train_time_s holds "
                 "now). resident/host: A = device-resident MNIST, B = host batches (drawn, converted, copied per step)")
    return lines
