"""Training-set-size sweeps: class-balanced, nested subsets drawn once from the seed, for every framework
and baseline alike; the evaluation and validation splits stay whole."""
from __future__ import annotations

import numpy as np

from bench.data.batches import Split, TaskData
from bench.errors import UsageError
from bench.spec import sweep

_SUBSET_STREAM = 0x5B5E7  # keeps the subset draw apart from the epoch-order stream of the same seed


def balanced_order(y: np.ndarray, seed: int) -> np.ndarray:
    """Indices of the whole split in draw order: each class shuffled by the seed, then the classes taken in
    turn (round-robin), so every prefix is class-balanced and a smaller size is a prefix of a larger one."""
    rng = np.random.default_rng((seed, _SUBSET_STREAM))
    classes = np.unique(y)
    rank = np.empty(len(y), np.int64)
    for c in classes:
        members = np.nonzero(y == c)[0]
        rank[members] = rng.permutation(len(members))
    # A class that runs out leaves the others to go on: ties broken by class, so the order is total.
    return np.lexsort((y, rank))


def subset(split: Split, size: int, seed: int) -> Split:
    """The first `size` examples of balanced_order, kept in the split's own order."""
    if size > len(split):
        raise UsageError(f"--train-size {size} is larger than the {len(split)} training examples")
    idx = np.sort(balanced_order(split.y, seed)[:size])
    return Split(split.x[idx], split.y[idx])


def apply(td: TaskData, size: int | None, seed: int, batch: int | None = None) -> TaskData:
    """The cell's data with its training split cut to `size` (None: all). With a `batch` (a network's
    training), each epoch draws the whole split's steps from enough shuffled copies (sweep.passes)."""
    if size is None:
        return td
    train = subset(td.train, size, seed)
    if batch is not None:
        train.passes = sweep.passes(len(td.train), size, batch)
        train.draws = len(td.train) // batch * batch  # the whole split's steps, exactly
    return TaskData(train, td.val, td.test, td.source, td.eval_split, td.skipped)


def check_positive(n: int) -> None:
    if n <= 0:
        raise UsageError(f"--train-size {n}: a training-set size must be positive")


def check_sizes(sizes: tuple[int | None, ...], pool: int, batch: int, classes: int, where: str) -> None:
    """Every size a whole number of batches, at least one example per class, at most the pool."""
    for n in sizes:
        if n is None:
            continue
        check_positive(n)
        if n < classes:
            raise UsageError(f"--train-size {n} is fewer examples than the {classes} classes of {where}")
        if n % batch:
            raise UsageError(f"--train-size {n} is not a whole number of batches of {batch} ({where}); "
                             f"try {max(batch, n // batch * batch)}")
        if n > pool:
            raise UsageError(f"--train-size {n} is larger than the {pool} training examples of {where}; "
                             "use all for the whole split")
