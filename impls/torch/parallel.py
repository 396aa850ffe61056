"""Data-parallel training for the torch adapter: one process per device under torchrun, one process group,
the model wrapped in DistributedDataParallel for the training forward (docs/distributed.md)."""
from __future__ import annotations

import atexit
import datetime
import inspect
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from bench.harness import ranks
from bench.harness.adapter import DeviceUnavailable

# A peer that hangs or dies mid-collective ends the others' wait in an error after this, never forever.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=10)
TEARDOWN_S = 10.0  # leaving the group at exit may block on a dead peer: give up after this
# Buffers are never trained (BatchNorm is frozen in every task): no broadcast of them before each forward
# (the switch is forward_sync_buffers from torch 2.13, which deprecates broadcast_buffers).
_NEW_SWITCH = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
NO_BUFFER_SYNC: dict[str, Any] = {"forward_sync_buffers" if _NEW_SWITCH else "broadcast_buffers": False}


def check_launch(devices: int) -> None:
    """A data-parallel build needs the processes torchrun starts, one per device."""
    if ranks.world() != devices or "MASTER_ADDR" not in os.environ:
        here = f"WORLD_SIZE={os.environ['WORLD_SIZE']}" if "WORLD_SIZE" in os.environ else "no WORLD_SIZE"
        raise RuntimeError(f"torch data-parallel cells run under torchrun, one process per device (WORLD_SIZE="
                           f"{devices}; this process has {here}): `bench run --devices {devices}` starts it")


def rank_device(device: torch.device, devices: int) -> torch.device:
    """This rank's device: on GPU its local GPU (cuda:LOCAL_RANK, made current), the CPU as it is."""
    if device.type != "cuda":
        return device
    if torch.cuda.device_count() < devices:
        raise DeviceUnavailable(f"{devices} GPUs asked for, torch sees {torch.cuda.device_count()}")
    chosen = torch.device("cuda", ranks.local_rank())
    torch.cuda.set_device(chosen)  # synchronize() and memory counters act on the current device
    return chosen


def join(device: torch.device) -> str:
    """Join torchrun's process group (once per process); the backend's name."""
    if not dist.is_initialized():
        if device.type == "cuda":
            dist.init_process_group("nccl", timeout=COLLECTIVE_TIMEOUT, device_id=device)
        else:
            dist.init_process_group("gloo", timeout=COLLECTIVE_TIMEOUT)
        atexit.register(leave)
    return str(dist.get_backend())


def leave() -> None:
    """Destroy the process group at exit, on a daemon thread: a vanished peer must not hang the exit."""
    if not dist.is_initialized():
        return
    done = threading.Thread(target=dist.destroy_process_group, name="bench-pg-teardown", daemon=True)
    done.start()
    done.join(TEARDOWN_S)


class Replicas:
    """This process's part of a data-parallel build: its rows of each global batch, the DDP wrapper of
    the current phase, and the global mean loss."""

    def __init__(self, device: torch.device, devices: int) -> None:
        check_launch(devices)
        self.device = rank_device(device, devices)
        self.backend = join(self.device)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.ddp: DistributedDataParallel | None = None

    def describe(self, batch: int, compiled: bool) -> str:
        where = "its own GPU" if self.device.type == "cuda" else "its slice of the cell's CPUs"
        return (f"torchrun: DistributedDataParallel over {self.world} processes ({self.backend}), each computing "
                f"{batch // self.world} of a batch's {batch} rows on {where}"
                + ("; the step's torch.compile graphs call the DDP module" if compiled else ""))

    def wrap(self, model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        """The training forward of a phase: DDP registers gradient hooks only for the parameters that
        require grad when it is built, so it is built anew after each phase sets them."""
        if self.ddp is not None:
            # Now, not whenever the old wrapper is garbage-collected: its reducer would all-reduce too.
            self.ddp._remove_autograd_hooks()
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.ddp = DistributedDataParallel(model, device_ids=ids, **NO_BUFFER_SYNC)
        return self.ddp  # compiled mode compiles the whole step around it (impls/torch/adapter.py)

    def shard(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """This rank's rows [r*b, (r+1)*b) of the global batch, b = batch // world (views, no copy)."""
        b = len(x) // self.world
        if b == 0:
            raise ValueError(f"a batch of {len(x)} rows cannot be split over {self.world} processes")
        rows = slice(self.rank * b, (self.rank + 1) * b)
        return x[rows], y[rows]

    def mean(self, loss: torch.Tensor) -> torch.Tensor:
        """The global mean loss from this rank's: the sum over ranks / world (gloo has no AVG)."""
        total = loss.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total.div_(self.world)
