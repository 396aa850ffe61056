"""A bare JAX loop over an adapter's own jitted, donated step and state: the harness-overhead baseline."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import numpy as np


def prepare(adapter: Any, batches: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[jax.Array, jax.Array]]:
    """The batches as device arrays, once, before any timing (the ideal loop's input)."""
    return [(jax.device_put(x, adapter.device), jax.device_put(y, adapter.device)) for x, y in batches]


def feed(adapter: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A batch as a hand-written JAX loop passes it: NumPy straight into the jitted step, which copies it."""
    return x, y


def train(adapter: Any, prepared: Iterable[tuple[Any, Any]]) -> jax.Array:
    """`state, loss = step(state, x, y)` per batch, then one block on the state; returns the last loss."""
    step, states = adapter.step, adapter.states
    for x, y in prepared:
        states, loss = step(states, x, y)
    jax.block_until_ready(states)
    # The step donates its input state: the adapter must hold the live buffers from now on.
    adapter.states = states
    return loss
