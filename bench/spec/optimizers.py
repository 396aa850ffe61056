"""Optimizer update rules, each fixed exactly: framework defaults differ (eps placement, initial
accumulators, bias correction, weight decay), so impls/<fw> override them where needed;
bench/spec/reference.py holds the NumPy float64 form. Every constant is a field; no default is a
framework's but taken from `rule`. Learning rates are per task (tasks.py, optimizer_axis.py)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SGD:
    """Plain, heavy-ball or Nesterov SGD, in torch's form (velocity in gradient units, dampening 0):

    v = momentum*v + g  (v starts at 0; the first step sets v = g);  w -= lr * v;
    nesterov: w -= lr * (g + momentum*v).

    Keras stores v' = momentum*v' - lr*g and adds it; with a constant learning rate (every task's)
    that is the same sequence of weights, so Keras and optax run their own SGD unchanged.
    """

    lr: float
    momentum: float = 0.0
    nesterov: bool = False
    name: str = "sgd"


@dataclass(frozen=True)
class Adagrad:
    """a = a + g^2 (a starts at initial_accumulator);  w -= lr * g / sqrt(a + eps)   (eps inside the sqrt).

    Keras' and optax's rule; torch starts the accumulator at 0 and puts eps (1e-10) outside the sqrt,
    so the first step is lr * sign(g) instead of lr * g / sqrt(0.1 + g^2): impls/torch implements this one.
    """

    lr: float
    initial_accumulator: float
    eps: float
    name: str = "adagrad"


@dataclass(frozen=True)
class RMSprop:
    """v = rho*v + (1-rho)*g^2;  w -= lr * g / sqrt(v + eps)   (v starts at 0, eps inside the sqrt).

    Keras' and optax's rule; torch.optim.RMSprop puts eps outside the sqrt (sqrt(1e-7) = 3e-4 vs
    1e-7: not a rounding detail), so impls/torch implements this one.
    """

    lr: float
    rho: float
    eps: float
    momentum: float = 0.0
    centered: bool = False
    name: str = "rmsprop"


@dataclass(frozen=True)
class Adam:
    """Kingma & Ba: m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
    w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).

    torch and optax use this form; Keras adds eps before the bias correction ("epsilon hat"), so
    impls/tf overrides Keras Adam's update step.
    """

    lr: float
    beta1: float
    beta2: float
    eps: float
    name: str = "adam"


@dataclass(frozen=True)
class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter), the decay scaled by the learning rate
    as torch, Keras and optax all do: w -= lr * weight_decay * w (from the weights before the step,
    every trained tensor, biases included), then the Adam step above.

    The defaults differ in value (torch 0.01, Keras 0.004, optax 1e-4) and Keras in its Adam epsilon;
    torch.optim.AdamW multiplies w by (1 - lr*wd) rounded to float32, a decay 0.13 % too strong at
    lr*wd = 1e-5, so impls/torch subtracts lr*wd*w instead.
    """

    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    name: str = "adamw"


Optimizer = SGD | Adagrad | RMSprop | Adam | AdamW


NAMES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
MOMENTUM = 0.9  # heavy-ball and Nesterov: the usual value (Keras and torch ship 0, meaning none)
ADAGRAD_INITIAL_ACCUMULATOR = 0.1  # Keras' and optax's; torch's 0 makes the first step lr * sign(g)
EPS = 1e-7  # Keras' epsilon, kept for every rule that has one (torch uses 1e-8 or 1e-10)
BETAS = (0.9, 0.999)
WEIGHT_DECAY = 0.01  # AdamW: torch's default (Keras 0.004, optax 1e-4)


def rule(name: str, lr: float) -> Optimizer:
    """The named update rule at learning rate `lr`, every other constant from this module."""
    rules: dict[str, Optimizer] = {
        "sgd": SGD(lr),
        "momentum": SGD(lr, momentum=MOMENTUM, name="momentum"),
        "nesterov": SGD(lr, momentum=MOMENTUM, nesterov=True, name="nesterov"),
        "adagrad": Adagrad(lr, initial_accumulator=ADAGRAD_INITIAL_ACCUMULATOR, eps=EPS),
        "rmsprop": RMSprop(lr, rho=0.9, eps=EPS),
        "adam": Adam(lr, beta1=BETAS[0], beta2=BETAS[1], eps=EPS),
        "adamw": AdamW(lr, beta1=BETAS[0], beta2=BETAS[1], eps=EPS, weight_decay=WEIGHT_DECAY),
    }
    if name not in rules:
        raise ValueError(f"unknown optimizer {name!r}: one of {', '.join(NAMES)}")
    return rules[name]
