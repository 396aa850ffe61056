"""A bare hand-written PyTorch loop over an adapter's own model and optimizer: the harness-overhead baseline."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch


def prepare(adapter: Any, batches: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The batches as tensors on the adapter's device, once, before any timing (the ideal loop's input)."""
    return [feed(adapter, x, y) for x, y in batches]


def feed(adapter: Any, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """One NumPy batch as tensors on the adapter's device (NHWC -> NCHW view), as a hand-written loop does."""
    return (torch.from_numpy(x).to(adapter.device).permute(0, 3, 1, 2),
            torch.from_numpy(y).to(adapter.device, adapter.label_dtype))


def train(adapter: Any, prepared: Iterable[tuple[Any, Any]]) -> torch.Tensor:
    """One pass of forward, loss, backward, step as a user would write it; returns the last loss, synced."""
    # adapter.forward is the model (its DDP wrapper under torchrun); the overhead benchmark runs the default
    # mode, eager on CPU: in --mode compiled the harness compiles the whole step, this loop does not.
    model, forward, opt, loss_fn = adapter.model, adapter.forward, adapter.opt, adapter.loss
    model.train()
    for x, y in prepared:
        loss = loss_fn(forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if adapter.device.type == "cuda":
        torch.cuda.synchronize()
    return loss.detach()
