"""Framework-neutral task data: verified splits (files via bench/fetch.py), scaling, and seeded batch order."""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from bench.errors import DataError
from bench.datasets import DatasetSpec
from bench.fetch import ensure_file, parse_idx, read_gz
from bench.spec import Profile, TaskSpec


def default_data_root() -> Path:
    """--data-root, else $BENCH_DATA, else the user cache dir ($XDG_CACHE_HOME/bench/data)."""
    if os.environ.get("BENCH_DATA"):
        return Path(os.environ["BENCH_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "bench" / "data"


def load_idx_split(ds: DatasetSpec, split: str, root: Path) -> tuple[np.ndarray, np.ndarray]:
    xs_path = ensure_file(ds, ds.files[f"{split}_images"], root)
    ys_path = ensure_file(ds, ds.files[f"{split}_labels"], root)
    x = parse_idx(read_gz(xs_path), xs_path.name, 3)
    y = parse_idx(read_gz(ys_path), ys_path.name, 1)
    if len(x) != len(y) or len(x) != ds.counts[split]:
        raise DataError(f"{ds.name} {split}: {len(x)} images, {len(y)} labels, expected {ds.counts[split]} of each")
    return x.reshape(len(x), *ds.image_shape), y.astype(np.int32)


def prepare(task: TaskSpec, dataset: str, profile: Profile, root: Path, kind: str = "train") -> str:
    """Make sure a cell's data is there and verified (downloading it once) before workers start.

    kind "logits" (bench verify) needs for a transfer task only its weights and the sample photos.
    """
    if hasattr(task, "backbone"):
        return _prepare_transfer(task, dataset, root, kind)
    ds = _dataset(task, dataset)
    if profile.bundled and ds.bundled is not None:
        load_bundled(ds)
        return f"bundled:{ds.bundled.package}"
    for fname in ds.content_sha256:
        ensure_file(ds, fname, root)
    return f"idx:{root / ds.name}"


def _prepare_transfer(task: object, dataset: str, root: Path, kind: str) -> str:
    from bench import images, imagefolder, pretrained
    from bench.vision import BACKBONES, IMAGE_DATASETS

    pretrained.load_backbone(BACKBONES[task.backbone], root)  # type: ignore[attr-defined]
    if kind == "logits":
        for name in images.SAMPLE_PHOTOS:
            images.sample_photo(name)
        return "sample photos"
    if dataset not in task.datasets:  # type: ignore[attr-defined]
        raise DataError(f"task {task.name} does not use dataset {dataset!r}")  # type: ignore[attr-defined]
    ds = IMAGE_DATASETS[dataset]
    base = imagefolder.ensure(ds, root)
    imagefolder.check_layout(ds, base)
    return f"images:{base}"


def load_bundled(ds: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's real offline subset, interleaved by class (see spec.BundledSubset)."""
    b = ds.bundled
    assert b is not None
    found = importlib.util.find_spec(b.package)  # locate without importing it
    if found is None or found.origin is None:
        raise DataError(f"the offline {ds.name} subset needs the package {b.package}: pip install {b.package}")
    path = Path(found.origin).parent / b.path
    if not path.exists():
        raise DataError(f"{path} is missing from the installed {b.package}; reinstall it")
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    x, y = table[:, :-1], table[:, -1]
    rank = np.zeros(len(y), np.int64)
    for c in np.unique(y):
        members = np.nonzero(y == c)[0]
        rank[members] = np.arange(len(members))
    order = np.argsort(rank * ds.num_classes + y, kind="stable")
    x, y = x[order].reshape(-1, *ds.image_shape), y[order]
    digest = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
    if digest != b.sha256 or len(y) != b.count:
        raise DataError(f"{path}: not the expected {b.count} examples (sha256 {digest[:12]}…); reinstall {b.package}")
    return x, y.astype(np.int32)


# ---------------------------------------------------------------- task data


@dataclass
class Split:
    x: np.ndarray  # float32 (N, H, W, C), already scaled
    y: np.ndarray  # int32 (N,)

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class TaskData:
    train: Split
    val: Split | None
    test: Split
    source: str  # "idx:<folder>" or "bundled:<package>"
    fingerprint: str  # sha256 over every array, to prove two runs saw the same data


def load_task_data(task: TaskSpec, dataset: str, profile: Profile, root: Path) -> TaskData:
    ds = _dataset(task, dataset)
    if profile.bundled and ds.bundled is not None:
        x, y = load_bundled(ds)
        n_test = profile.test_limit or len(y) // 5
        xtr, ytr, xte, yte = x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:]
        source = f"bundled:{ds.bundled.package}"
    else:
        xtr, ytr = load_idx_split(ds, "train", root)
        xte, yte = load_idx_split(ds, "test", root)
        source = f"idx:{root / ds.name}"
    if profile.train_limit:
        xtr, ytr = xtr[: profile.train_limit], ytr[: profile.train_limit]
    if profile.test_limit:
        xte, yte = xte[: profile.test_limit], yte[: profile.test_limit]
    n_val = int(round(len(ytr) * task.val_fraction))
    val = None
    if n_val:
        val = Split(_scale(xtr[-n_val:], task), ytr[-n_val:])
        xtr, ytr = xtr[:-n_val], ytr[:-n_val]
    if len(ytr) < task.batch_size:
        raise DataError(f"{len(ytr)} training examples is less than one batch of {task.batch_size}")
    train, test = Split(_scale(xtr, task), ytr), Split(_scale(xte, task), yte)
    h = hashlib.sha256()
    for s in (train, val, test):
        if s is not None:
            h.update(s.x.tobytes())
            h.update(s.y.tobytes())
    return TaskData(train, val, test, source, h.hexdigest()[:16])


def _dataset(task: TaskSpec, dataset: str) -> DatasetSpec:
    from bench.datasets import DATASETS

    if dataset not in task.datasets:
        raise DataError(f"task {task.name} does not use dataset {dataset!r}; choose from {', '.join(task.datasets)}")
    return DATASETS[dataset]


def _scale(x: np.ndarray, task: TaskSpec) -> np.ndarray:
    # Done once in NumPy so every framework receives bit-identical float32 pixels.
    return (x.astype(np.float32) * np.float32(task.pixel_scale)).reshape(len(x), *task.input_shape)


# ---------------------------------------------------------------- order and batches


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The permutation of epoch `epoch` (0-based): the same for every framework."""
    return np.random.default_rng((seed, epoch)).permutation(n)


def train_batches(split: Split, seed: int, epoch: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Full batches only: a short last batch would recompile XLA/tf.function steps, so it is dropped."""
    order = epoch_order(seed, epoch, len(split))
    for i in range(len(split) // batch_size):
        idx = order[i * batch_size : (i + 1) * batch_size]
        yield split.x[idx], split.y[idx]


def eval_batches(split: Split, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Fixed-size batches in order; the last is zero-padded and comes with its real length."""
    for i in range(0, len(split), batch_size):
        x = split.x[i : i + batch_size]
        n = len(x)
        if n < batch_size:
            x = np.concatenate([x, np.zeros((batch_size - n, *x.shape[1:]), x.dtype)])
        yield x, n
