"""JAX side of the matmul peak microbenchmark: times back-to-back square matmuls on a device."""
from __future__ import annotations

import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def _chain(x: jax.Array, b: jax.Array, count: jax.Array) -> jax.Array:
    # Each product feeds the next, so XLA can neither hoist nor drop any of them; b is scaled
    # by 1/sqrt(n) so the values stay finite over the chain.
    return jax.lax.fori_loop(0, count, lambda _, y: jnp.matmul(y, b, precision=jax.lax.Precision.HIGHEST), x)


def matmul_timer(n: int, dtype: str, device: str) -> Callable[[int], float]:
    """A function count -> seconds for `count` (n x n) @ (n x n) products, blocked on before and after."""
    dev = jax.devices("cpu" if device == "cpu" else "gpu")[0]
    rng = np.random.default_rng(0)
    a = jax.device_put(jnp.asarray(rng.standard_normal((n, n), np.float32), dtype=dtype), dev)
    b = jax.device_put(jnp.asarray(rng.standard_normal((n, n), np.float32) / np.sqrt(n), dtype=dtype), dev)
    fn = jax.jit(_chain)  # one compilation: the trip count is a traced argument

    def run(count: int) -> float:
        jax.block_until_ready((a, b))
        start = time.perf_counter()
        jax.block_until_ready(fn(a, b, jnp.int32(count)))
        return time.perf_counter() - start

    return run
