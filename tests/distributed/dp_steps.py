"""Train a few steps of a task without dropout through one framework's adapter on N devices, and save the
losses and final weights: `python -m tests.distributed.dp_steps FW N TASK STEPS OUT.npz` (a torch run at
N > 1 goes under torchrun; rank 0 saves). The data-parallel parity tests compare N = 2 with N = 1."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from bench import weights
from bench.harness import ranks
from bench.harness.adapter import load_adapter
from bench.spec import TASKS
from tests.frameworks.helpers import batches, without_dropout


def main(fw: str, n: int, task_name: str, steps: int, out: Path) -> None:
    task = without_dropout(TASKS[task_name])
    adapter = load_adapter(fw)
    adapter.build(task, weights.init_weights(task, 0), "cpu", 0, devices=n)
    adapter.set_phase(0)
    losses = [float(adapter.train_step(x, y)) for x, y in batches(task, steps)]
    if ranks.primary():
        launcher = adapter.settings().get("launcher", "")
        np.savez(out, losses=np.asarray(losses), launcher=np.asarray(launcher), **adapter.get_weights())


if __name__ == "__main__":
    fw, n, task_name, steps, out = sys.argv[1:]
    main(fw, int(n), task_name, int(steps), Path(out))
