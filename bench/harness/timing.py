"""The timing protocol inside a training run: the clock, first and steady epochs, step windows, time to accuracy."""
from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from bench.spec import Measurement

clock = time.perf_counter  # monotonic, highest resolution; read only after the adapter's sync()


def now() -> float:
    """The clock as the harness reads it (`clock` is looked up at each call: a test may replace it)."""
    return clock()


def epoch_summary(epoch_times: list[float], samples_per_epoch: int, batch_size: int,
                  steady_step_s: float | None) -> dict[str, float | None]:
    """First epoch (compile, autotune, caches) apart from the median of the steady ones.

    samples_per_s is steady: over the steady epochs, or with a single epoch over the probe's steady step
    (the first epoch holds the compile), else None, never the first epoch's."""
    if not epoch_times:
        return {"first_epoch_s": None, "steady_epoch_s": None, "samples_per_s": None}
    steady = statistics.median(epoch_times[1:]) if len(epoch_times) > 1 else None
    if steady:
        rate: float | None = samples_per_epoch / steady
    else:
        rate = batch_size / steady_step_s if steady_step_s else None
    return {"first_epoch_s": epoch_times[0], "steady_epoch_s": steady, "samples_per_s": rate}


class FirstStep:
    """When step 1 of a phase (compile, autotune, first step) completed, seen by a watcher thread that
    waits on the step's completion token: the training thread never waits for it.

    While the watcher waits, the interpreter's thread switch interval is lowered, so that the watcher
    reads the clock within ~0.1 ms of the step's end even while the training thread runs Python."""

    SWITCH_S = 1e-4

    def __init__(self, adapter: Any, clock: Callable[[], float] | None = None):
        self.adapter, self.clock = adapter, clock or now
        self.start = 0.0  # the epoch's clock start (set by the loop)
        self.done_at: float | None = None
        self._thread: threading.Thread | None = None
        self._interval = sys.getswitchinterval()

    def watch(self, out: Any) -> None:
        token = self.adapter.mark(out)  # in the training thread: never blocks

        def wait() -> None:
            try:
                self.adapter.wait(token)
                self.done_at = self.clock()
            finally:
                sys.setswitchinterval(self._interval)

        sys.setswitchinterval(self.SWITCH_S)
        self._thread = threading.Thread(target=wait, name="bench-first-step", daemon=True)
        self._thread.start()

    def seconds(self) -> float | None:
        """Step 1's end minus the epoch's clock start (includes the first batch's preparation, as epochs
        do); call after the epoch's sync."""
        if self._thread is None:
            return None
        self._thread.join()
        return None if self.done_at is None else self.done_at - self.start


class StepWindows:
    """Syncs after step 1, at the end of warm-up, then after every M steps: the steady-step statistics.

    Used by the step probe after training (bench/harness/probe.py), never inside train_time_s: each
    sync is a device drain (and for JAX a pipeline barrier even on CPU). A window never spans an
    epoch boundary: each epoch starts a fresh window and drops the partial one it ends with.
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


def tta_without_compile(seconds: float | None, reached_epoch: int | None, phases: list[dict[str, Any]],
                        epochs_per_phase: int) -> float | None:
    """Time to accuracy with each phase's compile taken out, as MLPerf lets compilation happen before the
    clock: every phase begun by the target's epoch loses its first step's excess over a steady step."""
    if seconds is None or reached_epoch is None:
        return None
    begun = phases[: (reached_epoch - 1) // epochs_per_phase + 1]
    excess = [ph["first_step_s"] - ph["steady_step_s"] for ph in begun
              if ph.get("first_step_s") is not None and ph.get("steady_step_s") is not None]
    if len(excess) < len(begun):
        return None  # a phase without a steady step: its compile cannot be told apart
    return seconds - sum(max(0.0, e) for e in excess)
