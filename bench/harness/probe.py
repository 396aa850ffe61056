"""The step probe: steady-step statistics measured after training, so that their syncs never fall
inside train_time_s. Per phase: that phase's trainable set and a fresh optimizer (set_phase), the
training input path, warm-up (recompiles included), then windows of M steps each closed by a sync."""
from __future__ import annotations

import itertools
from typing import Any

from bench.harness import loop
from bench.harness.timing import StepWindows

STEP_KEYS = ("steady_step_s", "steady_step_iqr_s", "steady_step_cv", "step_windows")


def probe_epoch(run: Any, p: int) -> int:
    """The order stream the probe of phase p draws from: the epochs after every trained one."""
    return len(run.task.phases) * run.cell.epochs + p


def measure(run: Any, p: int, current: int) -> dict[str, Any]:
    """Steady-step statistics of phase p (STEP_KEYS). `current` is the phase the adapter trains now:
    another one is set first. The probe trains on, after the final evaluation: the record's accuracy,
    losses and memory peaks are read before it."""
    m = run.task.measurement
    if p != current:
        run.adapter.set_phase(p)
    windows = StepWindows(m, run.adapter.sync)
    n = min(run.steps, m.warmup_steps + m.probe_steps)
    source = run.epoch_steps(probe_epoch(run, p))
    try:
        loop.train_epoch(run.adapter, itertools.islice(source, n), windows)
    finally:
        source.close()  # a prefetch thread stops with its generator
    summary = windows.summary()
    return {k: summary[k] for k in STEP_KEYS}
