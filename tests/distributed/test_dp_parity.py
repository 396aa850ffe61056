"""Data-parallel training is the same training: 20 steps without dropout on 2 devices and on 1, from the
same weights on the same global batches, in each framework through the real launch path (torchrun for
torch, N host devices for JAX, N logical CPUs for TF). Only the order of float32 sums changes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import weights
from bench.harness.cell import Cell
from bench.runner.isolation import launcher, worker_env
from bench.spec import TASKS

STEPS = 20
# Splitting a batch changes where float32 sums are rounded (per device, then across devices): that
# rounding, not a different training, is all N = 2 may add. `loss`: max |Δ loss| of any step.
# `weights`: per trained tensor, max |w_1 - w_2| / max |w_1 - w_0|, the difference relative to how far
# training moved it (Adam turns a gradient rounded differently near 0 into up to 2 * lr of step, as in
# tests/parity/test_parity_50.py). Measured on the 2-core dev machine (docs/distributed.md): loss <= 4.8e-7,
# weights <= 8.0e-4 (the CNN; the MLP 1.6e-6) in all three frameworks.
TOLERANCE = {"loss": 1e-5, "weights": 1e-2}
ENGINES = {"torch": "DistributedDataParallel", "tf": "MirroredStrategy", "jax": "NamedSharding"}


def train(fw: str, n: int, task: str, out: Path) -> dict[str, np.ndarray]:
    cell = Cell(task=task, framework=fw, device="cpu", profile="smoke", dataset="mnist", seed=0, epochs=1,
                data_root="", weights_path="", threads=2, devices=n)
    argv = [*launcher(cell, sys.executable), "-m", "tests.distributed.dp_steps", fw, str(n), task, str(STEPS), str(out)]
    done = subprocess.run(argv, env=worker_env(cell), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as z:
        return dict(z)


@pytest.mark.slow
@pytest.mark.parity
@pytest.mark.parametrize("task", ["mnist_mlp", "mnist_cnn"])
@pytest.mark.parametrize("fw", ["tf", "torch", "jax"])
def test_two_devices_train_like_one(fw: str, task: str, tmp_path: Path) -> None:
    pytest.importorskip({"tf": "tensorflow", "torch": "torch", "jax": "flax"}[fw])
    one, two = train(fw, 1, task, tmp_path / "one.npz"), train(fw, 2, task, tmp_path / "two.npz")
    assert ENGINES[fw] in str(two.pop("launcher")) and ENGINES[fw] not in str(one.pop("launcher"))
    start = weights.init_weights(TASKS[task], 0)
    loss_gap = float(np.abs(one.pop("losses") - two.pop("losses")).max())
    assert set(one) == set(two)
    moved = {k: float(np.abs(one[k] - start[k]).max()) for k in one}
    trained = [k for k in one if moved[k] > 0]  # a no-op step would also "agree"
    assert len(trained) == len(one), f"untrained tensors: {sorted(set(one) - set(trained))}"
    weight_gap = max(float(np.abs(one[k] - two[k]).max()) / moved[k] for k in trained)
    print(f"{fw} {task}: max |loss diff| {loss_gap:.2e}, max relative weight diff {weight_gap:.2e}")
    assert loss_gap <= TOLERANCE["loss"]
    assert weight_gap <= TOLERANCE["weights"]
