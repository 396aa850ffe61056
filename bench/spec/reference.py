"""NumPy float64 reference of the spec's rules (optimizers, MLP step), to hold every framework to them."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from bench.spec import SGD, Adagrad, Adam, AdamW, Dense, Dropout, Flatten, Optimizer, RMSprop, TaskSpec

State = dict[str, np.ndarray]
TORCH_ADAGRAD_EPS = 1e-10  # torch.optim.Adagrad's default, added outside the sqrt
KERAS_ADAMW_DECAY = 0.004  # keras.optimizers.AdamW's default weight decay


def _sgd(s: SGD, st: State, w: np.ndarray, g: np.ndarray, t: int, variant: str) -> np.ndarray:
    v = st["v"] = s.momentum * st.get("v", np.zeros_like(g)) + g  # the first step sets v = g
    return w - s.lr * (g + s.momentum * v if s.nesterov else v)


def _adagrad(s: Adagrad, st: State, w: np.ndarray, g: np.ndarray, t: int, variant: str) -> np.ndarray:
    if variant == "torch_adagrad":  # accumulator from 0, eps outside the sqrt: first step lr * sign(g)
        a = st["a"] = st.get("a", np.zeros_like(g)) + g * g
        return w - s.lr * g / (np.sqrt(a) + TORCH_ADAGRAD_EPS)
    a = st["a"] = st.get("a", np.full_like(g, s.initial_accumulator)) + g * g
    return w - s.lr * g / np.sqrt(a + s.eps)


def _rmsprop(s: RMSprop, st: State, w: np.ndarray, g: np.ndarray, t: int, variant: str) -> np.ndarray:
    if s.momentum or s.centered:
        raise NotImplementedError("reference RMSprop has no momentum/centered variant")
    v = st["v"] = s.rho * st.get("v", np.zeros_like(g)) + (1 - s.rho) * g * g
    if variant == "torch_rmsprop":
        return w - s.lr * g / (np.sqrt(v) + s.eps)
    return w - s.lr * g / np.sqrt(v + s.eps)


def _adam(s: Adam | AdamW, st: State, w: np.ndarray, g: np.ndarray, t: int, variant: str) -> np.ndarray:
    if isinstance(s, AdamW):  # decoupled decay from the weights before the step, then Adam's step
        w = w - s.lr * s.weight_decay * w
    m = st["m"] = s.beta1 * st.get("m", np.zeros_like(g)) + (1 - s.beta1) * g
    v = st["v"] = s.beta2 * st.get("v", np.zeros_like(g)) + (1 - s.beta2) * g * g
    if variant in ("keras_adam", "keras_adamw"):  # eps added before the bias correction ("epsilon hat")
        alpha = s.lr * np.sqrt(1 - s.beta2**t) / (1 - s.beta1**t)
        return w - alpha * m / (np.sqrt(v) + s.eps)
    return w - s.lr * (m / (1 - s.beta1**t)) / (np.sqrt(v / (1 - s.beta2**t)) + s.eps)


_STEPS: dict[type, Callable[..., np.ndarray]] = {SGD: _sgd, Adagrad: _adagrad, RMSprop: _rmsprop, Adam: _adam,
                                                 AdamW: _adam}


class ReferenceOptimizer:
    """The update rules documented on the spec's optimizer classes, in float64."""

    # The other variants are the frameworks' own defaults where they differ, for tests that must tell them apart.
    VARIANTS = ("spec", "keras_adam", "keras_adamw", "torch_rmsprop", "torch_adagrad")

    def __init__(self, spec: Optimizer, variant: str = "spec") -> None:
        assert variant in self.VARIANTS
        if variant == "keras_adamw":
            assert isinstance(spec, AdamW)
            spec = dataclasses.replace(spec, weight_decay=KERAS_ADAMW_DECAY)
        self.spec, self.t, self.variant = spec, 0, variant
        self.state: dict[str, State] = {}

    def update(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        if type(self.spec) not in _STEPS:
            raise NotImplementedError(type(self.spec).__name__)
        step = _STEPS[type(self.spec)]
        for k, g in grads.items():
            params[k] = step(self.spec, self.state.setdefault(k, {}), params[k], g, self.t, self.variant)


def mlp_loss_and_grads(task: TaskSpec, params: dict[str, np.ndarray], x: np.ndarray,
                       y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    """Softmax cross-entropy and its gradients for a Flatten/Dense/ReLU stack (dropout rate 0)."""
    h = x.reshape(len(x), -1).astype(np.float64)
    cache = []
    for i, layer in enumerate(task.layers):
        if isinstance(layer, Flatten):
            continue
        if isinstance(layer, Dropout):
            if layer.rate:
                raise ValueError("the reference is deterministic: set dropout rates to 0")
            continue
        if not isinstance(layer, Dense):
            raise NotImplementedError(f"reference MLP has no {type(layer).__name__}")
        z = h @ params[f"layers.{i}.kernel"] + params[f"layers.{i}.bias"]
        cache.append((i, h, z, layer.activation))
        h = np.maximum(z, 0) if layer.activation == "relu" else z
    shifted = h - h.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    n = len(y)
    loss = float(-np.log(p[np.arange(n), y]).mean())
    grad = p
    grad[np.arange(n), y] -= 1
    grad /= n
    grads: dict[str, np.ndarray] = {}
    for i, h_in, z, act in reversed(cache):
        if act == "relu":
            grad = grad * (z > 0)
        grads[f"layers.{i}.kernel"] = h_in.T @ grad
        grads[f"layers.{i}.bias"] = grad.sum(axis=0)
        grad = grad @ params[f"layers.{i}.kernel"].T
    return loss, grads
