"""The spec's optimizers in optax: SGD, Adagrad and RMSprop as optax has them, Adam and AdamW with bias
corrections accurate in float32 (optax.adam's are not)."""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from bench.harness.adapter import unsupported
from bench.spec import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop


class AdamState(NamedTuple):
    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def adam(lr: float, b1: float, b2: float, eps: float, weight_decay: float = 0.0) -> optax.GradientTransformation:
    """w -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * w): the paper's Adam as torch.optim.Adam
    has it, and with weight_decay torch's AdamW (the decay from the weights before the step).

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
        if weight_decay and params is None:
            raise ValueError("AdamW's decay needs the parameters: pass them to update")
        count = state.count + 1
        t = count.astype(jnp.float32)
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, grads)
        bc1, bc2 = -jnp.expm1(t * log_b1), -jnp.expm1(t * log_b2)
        updates = jax.tree.map(lambda m, v: -lr * (m / bc1) / (jnp.sqrt(v / bc2) + eps), mu, nu)
        if weight_decay:
            updates = jax.tree.map(lambda u, w: u - lr * weight_decay * w, updates, params)
        return updates, AdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)


def build_tx(spec: Optimizer) -> optax.GradientTransformation:
    """The spec's update rule, every optax default overridden."""
    if isinstance(spec, SGD):
        # optax's trace is the spec's form (v = mu*v + g; Nesterov g + mu*v), then -lr.
        return optax.sgd(spec.lr, momentum=spec.momentum or None, nesterov=spec.nesterov, accumulator_dtype=None)
    if isinstance(spec, Adagrad):
        # optax's scale_by_rss is the spec's rule: g * rsqrt(a + eps), a from initial_accumulator (> 0).
        return optax.adagrad(spec.lr, initial_accumulator_value=spec.initial_accumulator, eps=spec.eps)
    if isinstance(spec, RMSprop):
        # optax's rmsprop with eps_in_sqrt=True is the spec's (and Keras') rule.
        return optax.rmsprop(spec.lr, decay=spec.rho, eps=spec.eps, initial_scale=0.0, eps_in_sqrt=True,
                             centered=spec.centered, momentum=spec.momentum or None, bias_correction=False)
    if isinstance(spec, Adam):
        # Not optax.adam: its float32 bias correction makes every step too long (see adam above).
        return adam(spec.lr, b1=spec.beta1, b2=spec.beta2, eps=spec.eps)
    if isinstance(spec, AdamW):
        # Not optax.adamw, for the same bias correction; nnx.Optimizer passes the params to update.
        return adam(spec.lr, b1=spec.beta1, b2=spec.beta2, eps=spec.eps, weight_decay=spec.weight_decay)
    raise unsupported(type(spec).__name__, "jax")
