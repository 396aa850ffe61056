"""Device-resident input for the JAX adapter: the split and the epoch's order live on the device, each
batch is gathered there by a second jitted step that runs the host step's body on it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def gather_batch(x_all: jax.Array, y_all: jax.Array, order: jax.Array, i: jax.Array,
                 batch: int) -> tuple[jax.Array, jax.Array]:
    """Rows order[i*batch:(i+1)*batch] of the split; i is traced, so one compilation serves every batch."""
    idx = jax.lax.dynamic_slice(order, (i * batch,), (batch,))
    x, y = jnp.take(x_all, idx, axis=0), jnp.take(y_all, idx, axis=0)
    # The barrier keeps the gather out of the step's fusions, so XLA compiles the body as for a host
    # batch and rounds alike (equal without it on CPU; a guard for GPU fusions, untested there).
    return jax.lax.optimization_barrier((x, y))


def resident_step(train: Callable[..., Any], batch: int) -> Callable[..., Any]:
    """The jitted step (states, x_all, y_all, order, i) -> (states, loss); the states donated, the split
    and the order not (they serve the whole run)."""
    def step(states: Any, x_all: jax.Array, y_all: jax.Array, order: jax.Array, i: jax.Array) -> Any:
        return train(states, *gather_batch(x_all, y_all, order, i, batch))

    return jax.jit(step, donate_argnums=0)


class Resident:
    """The split and the current order on one device; `at(i)` the arguments of resident_step's batch i."""

    def __init__(self, x: np.ndarray, y: np.ndarray, device: jax.Device) -> None:
        self.device = device
        self.x = jax.device_put(np.asarray(x, np.float32), device)
        self.y = jax.device_put(np.asarray(y, np.int32), device)
        self.order: jax.Array | None = None

    def set_order(self, order: np.ndarray) -> None:
        self.order = jax.device_put(np.asarray(order, np.int32), self.device)

    def at(self, i: int) -> tuple[jax.Array, jax.Array, jax.Array, np.int32]:
        if self.order is None:
            raise RuntimeError("set_order() must be called before train_step_at()")
        # A NumPy scalar is traced like an array argument: no recompilation per batch index.
        return self.x, self.y, self.order, np.int32(i)


def no_data_parallel(mesh: Any) -> None:
    if mesh is not None:
        raise NotImplementedError("impls/jax: the device-resident input is single-device only; "
                                  "data-parallel builds take host batches through train_step")
