"""The timing protocol inside a training run: the clock, first and steady epochs, step windows, time to accuracy."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.spec import Measurement

clock = time.perf_counter  # monotonic, highest resolution; read only after the adapter's sync()


def now() -> float:
    """The clock as the harness reads it (`clock` is looked up at each call: a test may replace it)."""
    return clock()


def epoch_summary(epoch_times: list[float], samples_per_epoch: int) -> dict[str, float | None]:
    """First epoch (compile, autotune, caches) apart from the median of the steady ones."""
    if not epoch_times:
        return {"first_epoch_s": None, "steady_epoch_s": None, "samples_per_s": None}
    first = epoch_times[0]
    steady = statistics.median(epoch_times[1:]) if len(epoch_times) > 1 else None
    # With a single epoch there is no steady state: throughput is then the first epoch's.
    basis = steady if steady is not None else first
    return {
        "first_epoch_s": first,
        "steady_epoch_s": steady,
        "samples_per_s": samples_per_epoch / basis if basis > 0 else None,
    }


class StepWindows:
    """Syncs after step 1 (compile + first step), at the end of warm-up, then after every M steps.

    The caller syncs and reads the clock at each epoch end as before; a window never spans an
    epoch boundary (evaluation runs there), so each epoch starts a fresh window and the partial
    window an epoch ends with is dropped (its steps still count in the epoch's time). The extra
    syncs cost one device drain per M steps, identical for every framework; with the spec's M
    that is well under 1 % of train_time_s, which still measures the same span as before.
    """

    def __init__(self, m: Measurement, sync: Callable[[], None], clock: Callable[[], float] | None = None):
        self.warmup, self.size = m.warmup_steps, m.window_steps
        self.sync, self.clock = sync, clock or now
        self.steps = 0  # steps done in this run (or phase), across epochs
        self.first_step_s: float | None = None
        self.windows: list[float] = []  # seconds per full window of `size` steps
        self._epoch_start = 0.0
        self._start: float | None = None  # clock at the current window's start; None: no window open
        self._in_window = 0

    def begin_epoch(self, now: float) -> None:
        """Call with the clock value the epoch's own timing starts from (before its first batch)."""
        self._epoch_start = now
        self._start, self._in_window = (now if self.steps >= self.warmup else None), 0

    def after_step(self) -> None:
        """Call right after each train_step: syncs only at the protocol's points."""
        self.steps += 1
        if self.steps == 1:
            self.sync()
            now = self.clock()
            self.first_step_s = now - self._epoch_start  # includes the first batch's preparation, as epochs do
            self._start = now if self.warmup == 1 else None
            return
        if self.steps < self.warmup:
            return
        if self.steps == self.warmup:
            self.sync()
            self._start = self.clock()
            return
        if self._start is None:
            return
        self._in_window += 1
        if self._in_window == self.size:
            self.sync()
            now = self.clock()
            self.windows.append(now - self._start)
            self._start, self._in_window = now, 0

    def summary(self) -> dict[str, Any]:
        """first_step_s; steady_step_s = median window / M; its IQR over the windows' per-step times.

        No full window (too few steps after warm-up): steady fields None, step_windows 0. With one
        window there is no spread to measure, so the IQR and the CV (sd / mean) are None, not a fake 0.
        """
        per_step = [w / self.size for w in self.windows]
        iqr = cv = None
        if len(per_step) >= 2:
            q1, _, q3 = statistics.quantiles(per_step, n=4, method="inclusive")  # numpy's default (linear)
            iqr, cv = q3 - q1, statistics.stdev(per_step) / statistics.fmean(per_step)
        return {"first_step_s": self.first_step_s,
                "steady_step_s": statistics.median(per_step) if per_step else None,
                "steady_step_iqr_s": iqr, "steady_step_cv": cv, "step_windows": len(per_step)}


class TimeToAccuracy:
    """MLPerf rule: one clock from before the first training batch, never paused (evaluation included),
    stopped at the first evaluation whose accuracy reaches the target."""

    def __init__(self, target: float | None, clock: Callable[[], float] | None = None):
        self.target, self.clock = target, clock or now
        self.t0: float | None = None
        self.seconds: float | None = None
        self.epoch: int | None = None

    def start(self) -> None:
        self.t0 = self.clock()

    def check(self, epoch: int, accuracy: float) -> None:
        """Call right after each scheduled evaluation (every epoch end)."""
        if self.target is None or self.seconds is not None or self.t0 is None:
            return
        if accuracy >= self.target:
            self.seconds, self.epoch = self.clock() - self.t0, epoch

    def summary(self) -> dict[str, Any]:
        return {"tta_target": self.target, "time_to_accuracy_s": self.seconds, "tta_reached_epoch": self.epoch}
