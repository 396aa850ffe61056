"""The spec's optimizers in torch: SGD and Adam as torch has them; RMSprop and Adagrad with eps inside
the square root (the spec's rule; torch.optim puts it outside); AdamW with the decay subtracted."""
from __future__ import annotations

import torch

from bench.harness.adapter import unsupported
from bench.spec import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop


def _state(opt: torch.optim.Optimizer, params: list[torch.Tensor], key: str, fill: float) -> list[torch.Tensor]:
    """Each parameter's `key` state tensor, created filled with `fill` on first use."""
    out = []
    for p in params:
        state = opt.state[p]
        if key not in state:
            state[key] = torch.full_like(p, fill, memory_format=torch.preserve_format)
        out.append(state[key])
    return out


class _EpsInSqrt(torch.optim.Optimizer):
    """The step loop of the two rules with eps inside the square root, with multi-tensor (foreach) ops:
    a subclass updates its accumulator in `accumulate`, then w -= lr * g / sqrt(acc + eps)."""

    def accumulate(self, group: dict, params: list[torch.Tensor], grads: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]  # no closure: the spec's loop never passes one
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            denom = torch._foreach_add(self.accumulate(group, params, grads), group["eps"])
            torch._foreach_sqrt_(denom)
            torch._foreach_addcdiv_(params, grads, denom, value=-group["lr"])
        return None


class AdagradEpsInSqrt(_EpsInSqrt):
    """a = a + g^2 (a starts at initial_accumulator);  w -= lr * g / sqrt(a + eps)."""

    def __init__(self, params, lr: float, initial_accumulator: float, eps: float) -> None:
        super().__init__(params, {"lr": lr, "initial_accumulator": initial_accumulator, "eps": eps})

    def accumulate(self, group: dict, params: list[torch.Tensor], grads: list[torch.Tensor]) -> list[torch.Tensor]:
        acc = _state(self, params, "sum", group["initial_accumulator"])
        torch._foreach_addcmul_(acc, grads, grads, value=1.0)
        return acc


class RMSpropEpsInSqrt(_EpsInSqrt):
    """v = rho*v + (1-rho)*g^2;  w -= lr * g / sqrt(v + eps)."""

    def __init__(self, params, lr: float, rho: float, eps: float) -> None:
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps})

    def accumulate(self, group: dict, params: list[torch.Tensor], grads: list[torch.Tensor]) -> list[torch.Tensor]:
        square_avg = _state(self, params, "square_avg", 0.0)
        torch._foreach_mul_(square_avg, group["rho"])
        torch._foreach_addcmul_(square_avg, grads, grads, value=1.0 - group["rho"])
        return square_avg


class AdamWSubtractive(torch.optim.Adam):
    """w -= (lr * wd) * w, then torch's Adam step: the spec's AdamW as it writes it.

    torch.optim.AdamW multiplies by 1 - lr*wd rounded to float32: at lr*wd = 1e-5 that factor is
    168 ulps below 1 instead of 167.77, a decay 0.13 % stronger than the spec's at every step.
    """

    def __init__(self, params, lr: float, betas: tuple[float, float], eps: float, weight_decay: float) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=0.0, amsgrad=False, maximize=False,
                         foreach=True)
        self.decay = weight_decay

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]  # no closure: the spec's loop never passes one
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                torch._foreach_add_(params, params, alpha=-group["lr"] * self.decay)
        super().step()
        return None


def build_optimizer(spec: Optimizer, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The spec's update rule over `params`, every torch default overridden."""
    if isinstance(spec, SGD):
        # torch's SGD is the spec's form (v = mu*v + g, dampening 0; Nesterov w -= lr*(g + mu*v)).
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, dampening=0.0, weight_decay=0.0,
                               nesterov=spec.nesterov, maximize=False, foreach=True)
    if isinstance(spec, Adagrad):
        return AdagradEpsInSqrt(params, lr=spec.lr, initial_accumulator=spec.initial_accumulator, eps=spec.eps)
    if isinstance(spec, RMSprop):
        if spec.momentum or spec.centered:
            raise unsupported("RMSprop with momentum or centered", "torch")
        return RMSpropEpsInSqrt(params, lr=spec.lr, rho=spec.rho, eps=spec.eps)
    if isinstance(spec, Adam):
        # torch's Adam is the spec's (Kingma & Ba) rule.
        return torch.optim.Adam(params, lr=spec.lr, betas=(spec.beta1, spec.beta2), eps=spec.eps,
                                weight_decay=0.0, amsgrad=False, maximize=False, foreach=True)
    if isinstance(spec, AdamW):
        # Not torch.optim.AdamW: its float32 factor 1 - lr*wd rounds the decay (see AdamWSubtractive).
        return AdamWSubtractive(params, lr=spec.lr, betas=(spec.beta1, spec.beta2), eps=spec.eps,
                                weight_decay=spec.weight_decay)
    raise unsupported(type(spec).__name__, "torch")
