"""What the measurement protocol costs, per framework, on the machine it runs on: train time with the step
windows' syncs inside the epoch vs without (what train_time_s now holds), and the device-resident MNIST
input vs the host path. Figures printed with CIs (benchmarks/paired.py); every epoch's last loss must be finite."""
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


def compare(benchmark, fw: str, case: Case, what: str, a: tuple[bool, bool], b: tuple[bool, bool]) -> None:
    """Interleaved epochs of arm a against arm b, each (device-resident input, step windows inside)."""
    adapter = build(fw, case, cached=False)
    steps, rounds = paired.sized(step_seconds(adapter, case), benchmark.disabled)
    s = paired.split(case, steps)
    if not case.photos:
        adapter.put_train(s.x, s.y)
    arms = {arm: (lambda arm=arm: paired.epoch(adapter, case, s, *arm)) for arm in (a, b)}
    seconds = benchmark.pedantic(lambda: paired.run(arms, rounds), rounds=1, iterations=1)
    r = paired.row(what, fw, case, steps, seconds[a], seconds[b])
    benchmark.extra_info.update(r)
    assert r["a_ms"] > 0 and r["b_ms"] > 0


@pytest.mark.parametrize(("fw", "case"), params(WINDOW_CASES))
def test_step_windows_cost(benchmark, fw: str, case: Case) -> None:
    resident = not case.photos  # the worker's own input path
    compare(benchmark, fw, case, "step windows on / off", (resident, True), (resident, False))


@pytest.mark.parametrize(("fw", "case"), params(RESIDENT_CASES))
def test_device_resident_vs_host_input(benchmark, fw: str, case: Case) -> None:
    compare(benchmark, fw, case, "device-resident / host", (True, False), (False, False))
