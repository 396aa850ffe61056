"""The contract every impls/<fw> implements in full, for every task (no framework is imported here)."""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from bench.spec import FRAMEWORKS, TaskSpec
from bench.spec.shapes import weight_shapes

# The packages whose absence means "framework not installed" (a skip, not a failure).
FRAMEWORK_PACKAGES: dict[str, tuple[str, ...]] = {
    "tf": ("tensorflow", "keras"),
    "torch": ("torch",),
    "jax": ("jax", "flax", "optax"),
    "sklearn": ("sklearn", "skimage"),
}


# device_memory() of a CPU cell: the frameworks keep no device counters there.
NO_DEVICE_MEMORY: dict[str, int | None] = {"peak_bytes": None, "in_use_bytes": None, "reserved_bytes": None}


class DeviceUnavailable(RuntimeError):
    """The requested device is not visible to this framework (the cell is skipped)."""


class NotApplicable(RuntimeError):
    """The cell asks for something this framework does not have (e.g. eager JAX): skipped, never faked."""


class Adapter(Protocol):
    """One framework running one task. The harness owns the clock and the data; an adapter builds the
    spec's model and optimizers, runs steps and reports what its framework knows (devices, memory)."""

    name: ClassVar[str]

    def versions(self) -> dict[str, str]:
        """Framework package versions, for the record."""

    def build(self, task: TaskSpec, weights: dict[str, np.ndarray], device: str, seed: int,
              mode: str = "default", precision: str = "fp32", devices: int = 1) -> None:
        """Build the spec's model on `device` from the neutral weights (bench/spec/shapes.py layout).

        `seed` drives only the framework's own dropout RNG. `mode` (eager | compiled | default) and
        `precision` (fp32 | bf16): bench/spec/modes.py. `devices` > 1: train data-parallel on that many
        devices of the kind with the framework's own engine (docs/distributed.md): train_step still gets
        the global batch and returns the global mean loss; each device computes batch/devices of it, the
        gradients are averaged over all of them; settings() then names the engine under "launcher".
        Raises DeviceUnavailable when the device (or N of them) is absent, NotApplicable for a mode the
        framework lacks. No phase is set: call set_phase().
        """

    def set_phase(self, index: int) -> None:
        """Train task.phases[index] from now on: its trainable parameters and a fresh optimizer."""

    def settings(self) -> dict[str, str]:
        """What the build set up, in the framework's own terms: keys mode, precision, autotune."""

    def param_count(self) -> int:
        """Parameters of the model (BatchNorm statistics and the auxiliary head excluded), counted by the framework."""

    def trainable_count(self) -> int:
        """Parameters the current phase trains, counted by the framework (0 before set_phase)."""

    def train_step(self, x: np.ndarray, y: np.ndarray) -> Any:
        """One optimizer step on a batch with the task's loss; returns it as a device scalar (float() syncs)."""

    def logits(self, x: np.ndarray) -> Any:
        """Inference-mode logits as the framework's own array (float32 in fp32 and bf16)."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Inference-mode logits (no dropout, BatchNorm statistics), as a NumPy float32 array."""

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        """Inference-mode output of the layer the auxiliary head reads (task.aux_head.after), as NumPy
        float32: what a classical baseline learns from (bench/spec/sweep.py Frozen)."""

    def predict_aux(self, x: np.ndarray) -> np.ndarray:
        """The auxiliary head's logits (task.aux_head), as NumPy float32."""

    def inference(self) -> Callable[[np.ndarray], np.ndarray]:
        """The framework's idiomatic inference path (a compiled call where the mode compiles), x -> NumPy
        logits: what the latency and throughput measurements call (bench/harness/inference.py)."""

    def formats(self) -> tuple[str, ...]:
        """The framework's native save formats, the usual one first (its figures are the record's columns)."""

    def save(self, fmt: str, folder: Path) -> None:
        """Write the trained model (every tensor predict uses) into the empty `folder` in format `fmt`."""

    def load(self, fmt: str, folder: Path) -> Callable[[np.ndarray], np.ndarray]:
        """A new model read from `folder` (never executing code from the file), ready to predict like inference()."""

    def get_weights(self) -> dict[str, np.ndarray]:
        """Current tensors in the neutral layout, the auxiliary head included."""

    def sync(self) -> None:
        """Block until all queued device work (parameters included) is finished."""

    # Device-resident input (docs/protocol.md): the whole split on the device once, batches gathered there.
    def put_train(self, x: np.ndarray, y: np.ndarray) -> None:
        """Copy the whole training split onto the cell's device, once, before any clock starts."""

    def set_order(self, order: np.ndarray) -> None:
        """This epoch's shared order (row indices into the put_train split) onto the device, once per epoch."""

    def train_step_at(self, i: int) -> Any:
        """train_step on batch i of the order, gathered on the device: the same batch, loss and update as
        train_step(x[order[i*B:(i+1)*B]], y[...]) with B = task.batch_size, without a host copy or a sync."""

    def to_device(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        """A host batch copied to the cell's device without blocking the device (torch on GPU: pinned,
        non_blocking), in the form train_step accepts; called on the prefetch thread."""

    def mark(self, out: Any) -> Any:
        """A token for the completion of the step that just returned `out`, taken in the training thread
        without waiting (torch on GPU: a recorded CUDA event; JAX and TF: the output itself)."""

    def wait(self, token: Any) -> None:
        """Block until the step of `token` (from mark) has completed; safe to call from another thread."""

    def reset_device_peak(self) -> None:
        """Start a new device-memory peak (torch, TF); JAX has no reset (a no-op). Nothing on CPU."""

    def device_memory(self) -> dict[str, int | None]:
        """{"peak_bytes": the framework's peak since the last reset (JAX: since the process started),
        "in_use_bytes": now, "reserved_bytes": what the caching allocator holds (torch; else None)};
        every value None on CPU."""

    def matmul_fp32(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a @ b of two float32 matrices on the cell's device under the build's precision settings, as
        NumPy float32 (the runtime TF32 check: bench/harness/tf32.py)."""

    def device_name(self) -> str:
        """The model of the device the cell ran on, as the framework names it."""


def load_adapter(framework: str) -> Any:
    """Import impls.<fw>.adapter (this imports the framework) and instantiate its Adapter."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}")
    return importlib.import_module(f"impls.{framework}.adapter").Adapter()


def cpu_threads() -> int | None:
    """The CPU thread count the runner chose for this cell ($BENCH_THREADS), if any."""
    value = os.environ.get("BENCH_THREADS")
    return int(value) if value else None


def unsupported(what: str, framework: str) -> NotImplementedError:
    return NotImplementedError(f"{what} is not implemented in impls/{framework}")


def check_names(framework: str, task: TaskSpec, built: set[str]) -> None:
    """The framework's model must hold exactly the spec's tensors, by neutral name."""
    want = set(weight_shapes(task))
    if built != want:
        diff = sorted(built ^ want)[:5]
        raise RuntimeError(f"impls/{framework} builds {task.name} with other tensors than its spec (e.g. {diff})")
