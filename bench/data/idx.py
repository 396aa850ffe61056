"""IDX datasets (MNIST, Fashion-MNIST) as task splits: verified files, or the bundled offline subset."""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np

from bench.data.batches import Split, TaskData
from bench.data.fetch import ensure_file, parse_idx, read_gz
from bench.errors import DataError
from bench.spec import IdxDataset, PixelInput, Profile, TaskSpec


def load_idx_split(ds: IdxDataset, split: str, root: Path) -> tuple[np.ndarray, np.ndarray]:
    xs_path = ensure_file(ds, ds.files[f"{split}_images"], root)
    ys_path = ensure_file(ds, ds.files[f"{split}_labels"], root)
    x = parse_idx(read_gz(xs_path), xs_path.name, 3)
    y = parse_idx(read_gz(ys_path), ys_path.name, 1)
    if len(x) != len(y) or len(x) != ds.counts[split]:
        raise DataError(f"{ds.name} {split}: {len(x)} images, {len(y)} labels, expected {ds.counts[split]} of each")
    return x.reshape(len(x), *ds.image_shape), y.astype(np.int32)


def load_bundled(ds: IdxDataset) -> tuple[np.ndarray, np.ndarray]:
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


def prepare(ds: IdxDataset, profile: Profile, root: Path) -> str:
    """Make sure the files are there and verified (downloading them once); returns the data source."""
    if profile.bundled and ds.bundled is not None:
        load_bundled(ds)
        return f"bundled:{ds.bundled.package}"
    for fname in ds.content_sha256:
        ensure_file(ds, fname, root)
    return f"idx:{root / ds.name}"


def load(task: TaskSpec, ds: IdxDataset, profile: Profile, root: Path) -> TaskData:
    """Train (minus the held-out validation tail), validation and test splits, scaled once."""
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
    return TaskData(Split(_scale(xtr, task), ytr), val, Split(_scale(xte, task), yte), source, ds.eval_split)


def _scale(x: np.ndarray, task: TaskSpec) -> np.ndarray:
    # Done once in NumPy so every framework receives bit-identical float32 pixels.
    assert isinstance(task.input, PixelInput), f"{task.name}: IDX digits feed a pixel input"
    return (x.astype(np.float32) * np.float32(task.input.scale)).reshape(len(x), *task.input_shape)
