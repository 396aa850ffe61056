"""Micro-benchmarks of one train step and one predict (eval) step per framework and task, on fixed seeded inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench.harness.timing import now
from benchmarks.cases import Case, build, fixed_batch, inference_loss, params, rounds_for

TRAIN_CASES = [Case("mnist_mlp"), Case("mnist_cnn"), Case("cats_vs_dogs", 0), Case("cats_vs_dogs", 1)]
PREDICT_CASES = [Case("mnist_mlp"), Case("mnist_cnn"), Case("cats_vs_dogs")]


@pytest.mark.parametrize(("fw", "case"), params(TRAIN_CASES))
def test_train_step(benchmark, fw: str, case: Case) -> None:
    adapter = build(fw, case)
    x, y = fixed_batch(case, case.batch_size)

    def step() -> float:
        loss = adapter.train_step(x, y)
        adapter.sync()  # inside the timed call: async dispatch (JAX, CUDA) would otherwise time only the enqueue
        return float(loss)

    # The spec's warm-up (compile, tracing, first-use caches), at least 3 steps: the loss on the
    # repeated batch, in inference mode after each step, must fall from the first step to the last.
    # (Not from before the first: RMSprop's first update is lr / sqrt(1 - rho), ~3x lr, and overshoots.)
    seconds, losses = [], []
    for _ in range(max(3, case.spec.measurement.warmup_steps)):
        t = now()
        assert math.isfinite(step())
        seconds.append(now() - t)
        losses.append(inference_loss(adapter, case, x, y))
    assert losses[-1] < losses[0], f"{fw} {case.id}: loss on the repeated batch did not fall: {losses}"

    benchmark.group = f"train_step {case.id}"
    benchmark.extra_info.update(framework=fw, task=case.task, phase=case.id, batch_size=case.batch_size,
                                device=adapter.device_name())
    loss = benchmark.pedantic(step, rounds=rounds_for(seconds[-1]), warmup_rounds=1)
    assert math.isfinite(loss)


@pytest.mark.parametrize(("fw", "case"), params(PREDICT_CASES))
def test_predict(benchmark, fw: str, case: Case) -> None:
    adapter = build(fw, case)
    # The harness's evaluation batch for MNIST (1 000 images); the small batch for cats_vs_dogs.
    n = case.batch_size if case.photos else case.spec.eval_batch_size
    x, _ = fixed_batch(case, n, stream=1)

    def predict() -> np.ndarray:
        return adapter.predict(x)  # a NumPy array: reading the result back is the sync

    t = now()
    first = predict()  # compile
    seconds = now() - t
    assert first.shape == (n, case.spec.num_outputs) and np.isfinite(first).all()

    benchmark.group = f"predict {case.id}"
    benchmark.extra_info.update(framework=fw, task=case.task, batch_size=n, device=adapter.device_name())
    out = benchmark.pedantic(predict, rounds=rounds_for(seconds), warmup_rounds=1)
    # Inference mode: no dropout, so the same batch gives the same logits every time.
    np.testing.assert_allclose(out, first, rtol=1e-5, atol=1e-6)
