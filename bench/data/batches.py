"""Splits, the seeded batch order every framework shares, and the batches themselves."""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from bench.spec import TaskSpec

# A fixed third entropy word keeps the flip stream apart from the order stream of the same (seed, epoch).
_FLIP_STREAM = 0xF11B


@dataclass
class Split:
    x: np.ndarray  # (N, H, W, C): float32 scaled pixels, or uint8 photos (normalised per batch)
    y: np.ndarray  # int32 (N,)
    # A size sweep's subset (bench/data/subsets.py): an epoch draws `draws` examples from `passes` shuffled
    # copies of the split, so every size takes the same optimizer steps.
    passes: int = 1
    draws: int | None = None  # None: every copy whole

    def __len__(self) -> int:
        return len(self.y)

    @property
    def samples(self) -> int:
        """Examples one training epoch draws."""
        return len(self.y) * self.passes if self.draws is None else self.draws


@dataclass
class TaskData:
    """A cell's data: train, an optional held-out validation split, and the split evaluated every epoch."""

    train: Split
    val: Split | None
    test: Split
    source: str  # "idx:<folder>", "bundled:<package>" or "images:<folder>"
    eval_split: str  # what the records call `test`: "test", or "val" for a photo folder's validation photos
    skipped: list[str] = field(default_factory=list)  # unreadable input files, "path: reason"

    @property
    def fingerprint(self) -> str:
        """sha256 over every array: two runs with equal fingerprints saw the same data."""
        h = hashlib.sha256()
        for s in (self.train, self.val, self.test):
            if s is not None:
                h.update(s.x.tobytes())
                h.update(s.y.tobytes())
        return h.hexdigest()[:16]


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The permutation of epoch `epoch` (0-based, counted over all phases): the same for every framework."""
    return epoch_slots(seed, epoch, n, 1)


def epoch_slots(seed: int, epoch: int, n: int, passes: int) -> np.ndarray:
    """`passes` shuffles of range(n), one after another, from the epoch's one order stream."""
    rng = np.random.default_rng((seed, epoch))
    return np.concatenate([rng.permutation(n) for _ in range(passes)])


def flip_mask(seed: int, epoch: int, n: int) -> np.ndarray:
    """Which training images (by index into the split) are mirrored in this epoch: shared by all frameworks."""
    return np.random.default_rng((seed, epoch, _FLIP_STREAM)).random(n) < 0.5


def train_order(split: Split, seed: int, epoch: int, batch_size: int) -> np.ndarray:
    """The rows of an epoch's full batches, in order: batch i is rows [i*B, (i+1)*B) of it (what the
    device-resident path uploads once per epoch, bench/harness/loop.py)."""
    order = epoch_slots(seed, epoch, len(split), split.passes)[: split.samples]
    return order[: len(order) // batch_size * batch_size]


def train_batches(task: TaskSpec, split: Split, seed: int, epoch: int,
                  batch_size: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Full batches in the seeded order of `epoch`, flipped by the shared mask where the input says so,
    normalised. A short last batch would recompile XLA/tf.function steps, so it is dropped.

    With `passes` > 1 the epoch runs that many shuffles of the split one after another, cut to `draws`
    (each example drawn `passes` or `passes - 1` times); with one pass nothing changes."""
    bs = batch_size or task.batch_size
    order = train_order(split, seed, epoch, bs)
    flips = flip_mask(seed, epoch, len(split)) if task.input.flip else None
    for i in range(len(order) // bs):
        idx = order[i * bs : (i + 1) * bs]
        x = split.x[idx]  # fancy indexing copies: flipping in place leaves the split untouched
        if flips is not None:
            m = flips[idx]
            x[m] = x[m, :, ::-1]
        yield task.input.normalize(x), split.y[idx]


def eval_batches(task: TaskSpec, split: Split) -> Iterator[tuple[np.ndarray, int]]:
    """Fixed-size batches in order, normalised; the last is zero-padded and comes with its real length."""
    bs = task.eval_batch_size
    for i in range(0, len(split), bs):
        x = split.x[i : i + bs]
        n = len(x)
        if n < bs:
            x = np.concatenate([x, np.zeros((bs - n, *x.shape[1:]), x.dtype)])
        yield task.input.normalize(x), n
