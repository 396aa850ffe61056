"""How much of a task runs (profiles) and how its steps are timed (measurement)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """How much of a task to run: `epochs` None means the task's own; limits cap the splits."""

    name: str
    epochs: int | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    bundled: bool = False  # an IDX dataset's offline bundled subset, where it has one


# smoke: seconds, offline, real digits; quick: full data, 2 epochs; standard: the spec.
PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", epochs=2, train_limit=1536, test_limit=1000, bundled=True),
    "quick": Profile("quick", epochs=2),
    "standard": Profile("standard"),
}


@dataclass(frozen=True)
class Measurement:
    """Steady-state step timing, in a probe after training (bench/harness/probe.py), so that no sync of
    it falls inside train_time_s: `warmup_steps` steps (the first included) are not timed as steady; then
    windows of `window_steps` steps, each timed with one sync at its end (bench/harness/timing.py), over
    at most `probe_steps` steps (and at most one epoch's). On GPU a background thread draws
    `prefetch_batches` batches ahead of training (bench/harness/loop.py)."""

    warmup_steps: int
    window_steps: int
    probe_steps: int = 200  # enough windows for a median and an IQR; a cost of seconds per phase
    prefetch_batches: int = 2  # 1 hides the draw behind one step; 2 also absorbs a slow draw now and then

    def prefetch(self, device: str) -> int:
        """Batches drawn ahead on `device`; 0: drawn in the training thread, between steps.

        On CPU the framework's threads already fill every core the worker may use, so a drawing
        thread only takes cores from them; on GPU the host waits on the device while the next batch
        could be drawn.
        """
        return self.prefetch_batches if device == "gpu" else 0

    def __post_init__(self) -> None:
        if self.warmup_steps < 1 or self.window_steps < 1:
            raise ValueError("warmup_steps and window_steps must be >= 1 (step 1 is always warm-up)")
        if self.probe_steps < self.window_steps:
            raise ValueError("probe_steps must hold at least one window")
        if self.prefetch_batches < 1:
            raise ValueError("prefetch_batches must be >= 1")


@dataclass(frozen=True)
class Inference:
    """After training, per ok cell (bench/harness/inference.py): batch-1 latency over `latency_calls`
    calls after `latency_warmup` untimed ones (compiles, retraces for the new shape, first-use
    caches), and throughput at the task's evaluation batch over `throughput_calls` after
    `throughput_warmup`. Every call returns NumPy, so each timing includes the device sync and the
    copy of the logits to the host, as a user's prediction does."""

    latency_calls: int = 200  # enough for a p99 that is not the maximum (2 calls above it)
    latency_warmup: int = 20
    throughput_calls: int = 10
    throughput_warmup: int = 2


INFERENCE = Inference()
