"""The spec's optimizers in optax: RMSprop as optax has it, Adam with bias corrections accurate in
float32 (optax.adam's are not)."""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from bench.harness.adapter import unsupported
from bench.spec import Adam, Optimizer, RMSprop


class AdamState(NamedTuple):
    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def adam(lr: float, b1: float, b2: float, eps: float) -> optax.GradientTransformation:
    """w -= lr * m_hat / (sqrt(v_hat) + eps), the rule of torch.optim.Adam and of the paper.

    optax.adam computes 1 - b2**t as float32(b2)**t while its moment update uses 1 - b2 rounded
    from float64: for b2 = 0.999 the two differ by 1.3e-5 relative, so every step is too long by a
    fixed fraction, a systematic bias rather than noise (docs/fairness.md has what it did to
    training). Here 1 - b**t = -expm1(t * log b), with log b taken in float64.
    """
    log_b1, log_b2 = math.log(b1), math.log(b2)

    def init(params: optax.Params) -> AdamState:
        return AdamState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params),
                         jax.tree.map(jnp.zeros_like, params))

    def update(grads: optax.Updates, state: AdamState, params: optax.Params | None = None) -> tuple:
        del params
        count = state.count + 1
        t = count.astype(jnp.float32)
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, grads)
        bc1, bc2 = -jnp.expm1(t * log_b1), -jnp.expm1(t * log_b2)
        updates = jax.tree.map(lambda m, v: -lr * (m / bc1) / (jnp.sqrt(v / bc2) + eps), mu, nu)
        return updates, AdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)


def build_tx(spec: Optimizer) -> optax.GradientTransformation:
    """The spec's update rule, every optax default overridden."""
    if isinstance(spec, RMSprop):
        # optax's rmsprop with eps_in_sqrt=True is the spec's (and Keras') rule.
        return optax.rmsprop(spec.lr, decay=spec.rho, eps=spec.eps, initial_scale=0.0, eps_in_sqrt=True,
                             centered=spec.centered, momentum=spec.momentum or None, bias_correction=False)
    if isinstance(spec, Adam):
        # Not optax.adam: its float32 bias correction makes every step too long (see adam above).
        return adam(spec.lr, b1=spec.beta1, b2=spec.beta2, eps=spec.eps)
    raise unsupported(type(spec).__name__, "jax")
