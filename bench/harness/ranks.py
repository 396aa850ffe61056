"""Which process of a data-parallel cell this is. torchrun starts one worker per device and names each in
its environment (RANK, WORLD_SIZE, LOCAL_RANK); a single-process cell (TF, JAX, or one device) is rank 0
of 1. Rank 0 alone reports: its events, its clock and its result file are the cell's."""
from __future__ import annotations

import os


def rank() -> int:
    return int(os.environ.get("RANK") or 0)


def world() -> int:
    return int(os.environ.get("WORLD_SIZE") or 1)


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK") or 0)


def primary() -> bool:
    return rank() == 0


def cpu_share(cpus: list[int], threads: int) -> list[int]:
    """The CPUs this process may use: the first `threads` of `cpus` in one process; with W local ranks,
    rank r's equal slice of them (the cell's thread budget is the same however many processes share it)."""
    chosen = cpus[:threads]
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE") or 1)
    if ranks <= 1:
        return chosen
    per = max(1, len(chosen) // ranks)
    start = (local_rank() * per) % len(chosen)
    return chosen[start:start + per]
