"""The Adapter protocol every impls/<fw> implements (no framework is imported here)."""
from __future__ import annotations

import importlib
from typing import Any, ClassVar, Protocol

import numpy as np

from bench.spec import FRAMEWORKS, TaskSpec

# The package whose absence means "framework not installed" (a skip, not a failure).
FRAMEWORK_PACKAGES: dict[str, tuple[str, ...]] = {
    "tf": ("tensorflow", "keras"),
    "torch": ("torch",),
    "jax": ("jax", "flax", "optax"),
}


class DeviceUnavailable(RuntimeError):
    """The requested device is not visible to this framework (the cell is skipped)."""


class NotApplicable(RuntimeError):
    """The cell asks for something this framework does not have (e.g. eager JAX): skipped, never faked."""


class Adapter(Protocol):
    name: ClassVar[str]

    def versions(self) -> dict[str, str]:
        """Framework package versions, for the record."""

    def build(self, task: TaskSpec, weights: dict[str, np.ndarray], device: str, seed: int,
              mode: str = "default", precision: str = "fp32") -> None:
        """Build the spec's model and optimizer on `device` from the neutral weights.

        `seed` drives only the framework's own dropout RNG; initial weights come from `weights`.
        `mode` (eager | compiled | default) and `precision` (fp32 | bf16): see bench/modes.py.
        Raises DeviceUnavailable when the device is absent, NotApplicable for a mode the framework lacks.
        """

    def settings(self) -> dict[str, str]:
        """What the build set up, in the framework's own terms: keys mode, precision, autotune."""

    def param_count(self) -> int:
        """Number of trainable parameters, counted by the framework."""

    def train_step(self, x: np.ndarray, y: np.ndarray) -> Any:
        """One optimizer step on a batch; returns the loss as a device scalar (float() syncs)."""

    def logits(self, x: np.ndarray) -> Any:
        """Logits in inference mode as the framework's own array (its dtype is float32 in fp32 and bf16)."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits in inference mode (no dropout), as a NumPy float32 array."""

    def get_weights(self) -> dict[str, np.ndarray]:
        """Current parameters converted back to the neutral layout."""

    def sync(self) -> None:
        """Block until all queued device work (parameters included) is finished."""

    def device_peak_bytes(self) -> int | None:
        """Peak device memory from the framework's own counter; None on CPU."""

    def device_name(self) -> str:
        """The model of the device the cell ran on, as the framework names it."""


def load_adapter(framework: str, kind: str = "adapter") -> Any:
    """Import impls.<fw>.<kind> (this imports the framework) and instantiate its Adapter.

    kind "adapter": the MNIST tasks (this protocol); "transfer": the transfer task, which adds
    set_phase(i), trainable_count() and predict_imagenet(x) (see impls/<fw>/transfer.py).
    """
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}")
    if kind not in ("adapter", "transfer"):
        raise ValueError(f"unknown adapter kind {kind!r}")
    module = importlib.import_module(f"impls.{framework}.{kind}")
    return module.Adapter()


def cpu_threads() -> int | None:
    """The CPU thread count the runner chose for this cell ($BENCH_THREADS), if any."""
    import os

    value = os.environ.get("BENCH_THREADS")
    return int(value) if value else None


def unsupported(what: str, framework: str) -> NotImplementedError:
    return NotImplementedError(f"{what} is not implemented in impls/{framework}")
