"""Task data, framework-neutral: verified datasets (IDX files, photo folders), one loader per kind of
dataset, the seeded batch order every framework shares, and the inputs `bench verify` feeds."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import idx, photos
from bench.data.batches import Split, TaskData, eval_batches, train_batches, train_order
from bench.data.images import sample_photos
from bench.errors import DataError
from bench.files import user_cache
from bench.spec import DATASETS, Dataset, IdxDataset, PhotoFolder, PhotoInput, Profile, TaskSpec

__all__ = ["Split", "TaskData", "default_data_root", "eval_batches", "load", "prepare", "train_batches", "train_order",
           "verification_inputs"]


def default_data_root() -> Path:
    """--data-root, else $BENCH_DATA, else the user cache ($XDG_CACHE_HOME or ~/.cache)/bench/data."""
    if os.environ.get("BENCH_DATA"):
        return Path(os.environ["BENCH_DATA"]).expanduser()
    return user_cache() / "data"


# What loads each kind of dataset: a new kind is a module with prepare() and load() and an entry here.
SOURCES: dict[type, Any] = {IdxDataset: idx, PhotoFolder: photos}


def _dataset(task: TaskSpec, dataset: str) -> Dataset:
    if dataset not in task.datasets:
        raise DataError(f"task {task.name} does not use dataset {dataset!r}; choose from {', '.join(task.datasets)}")
    return DATASETS[dataset]


def prepare(task: TaskSpec, dataset: str, profile: Profile, root: Path, kind: str = "train") -> str:
    """Make sure a cell's inputs are there and verified (downloading them once) before workers start:
    the dataset (for training), the pretrained weights, the sample photos (for `bench verify`)."""
    if task.pretrained is not None:
        from bench.weights.pretrained import load_pretrained

        load_pretrained(task, root)
    if kind == "logits":
        verification_inputs(task, root)
        return "verification inputs"
    ds = _dataset(task, dataset)
    return str(SOURCES[type(ds)].prepare(ds, profile, root))


def load(task: TaskSpec, dataset: str, profile: Profile, root: Path) -> TaskData:
    ds = _dataset(task, dataset)
    td: TaskData = SOURCES[type(ds)].load(task, ds, profile, root)
    if len(td.train) < task.batch_size:
        raise DataError(f"{len(td.train)} training examples is less than one batch of {task.batch_size}")
    return td


def verification_inputs(task: TaskSpec, root: Path) -> np.ndarray:
    """What `bench verify` feeds every framework: for a photo input the sample photos (real photos whose
    ImageNet classes are known), else the first `verify_batch` smoke evaluation images."""
    if isinstance(task.input, PhotoInput):
        return sample_photos(task.input)
    td = load(task, task.datasets[0], task.profiles["smoke"], root)
    return np.ascontiguousarray(td.test.x[: task.verify_batch])
