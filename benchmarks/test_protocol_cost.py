"""What the measurement protocol costs, per framework, on the machine it runs on: train time with the step
windows' syncs inside the epoch vs without (what train_time_s now holds), and the device-resident MNIST
input vs the host path. Figures printed with CIs (benchmarks/paired.py), and each arm must train."""
from __future__ import annotations

import math

import pytest

from bench.harness.timing import now
from benchmarks import paired
from benchmarks.cases import Case, build, fixed_batch, params

WINDOW_CASES = [Case("mnist_mlp"), Case("mnist_cnn"), Case("cats_vs_dogs", 0)]
RESIDENT_CASES = [Case("mnist_mlp"), Case("mnist_cnn")]


def step_seconds(adapter, case: Case) -> float:
    x, y = fixed_batch(case, case.batch_size)
    for _ in range(3):  # compile, then one timed synced step
        t = now()
        loss = adapter.train_step(x, y)
        adapter.sync()
    assert math.isfinite(float(loss))
    return now() - t


@pytest.mark.parametrize(("fw", "case"), params(WINDOW_CASES))
def test_step_windows_cost(benchmark, fw: str, case: Case) -> None:
    adapter = build(fw, case, cached=False)
    steps, rounds = paired.sized(step_seconds(adapter, case), benchmark.disabled)
    s = paired.split(case, steps)
    resident = not case.photos
    if resident:
        adapter.put_train(s.x, s.y)
    arms = {"windows": lambda: paired.epoch(adapter, case, s, resident, True),
            "none": lambda: paired.epoch(adapter, case, s, resident, False)}
    seconds = benchmark.pedantic(lambda: paired.run(arms, rounds), rounds=1, iterations=1)
    r = paired.row("step windows on / off", fw, case, steps, seconds["windows"], seconds["none"])
    benchmark.extra_info.update(r)
    assert r["a_ms"] > 0 and r["b_ms"] > 0


@pytest.mark.parametrize(("fw", "case"), params(RESIDENT_CASES))
def test_device_resident_vs_host_input(benchmark, fw: str, case: Case) -> None:
    adapter = build(fw, case, cached=False)
    steps, rounds = paired.sized(step_seconds(adapter, case), benchmark.disabled)
    s = paired.split(case, steps)
    adapter.put_train(s.x, s.y)
    arms = {"resident": lambda: paired.epoch(adapter, case, s, True, False),
            "host": lambda: paired.epoch(adapter, case, s, False, False)}
    seconds = benchmark.pedantic(lambda: paired.run(arms, rounds), rounds=1, iterations=1)
    r = paired.row("device-resident / host", fw, case, steps, seconds["resident"], seconds["host"])
    benchmark.extra_info.update(r)
    assert r["a_ms"] > 0 and r["b_ms"] > 0
