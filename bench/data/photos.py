"""ImageFolder datasets (`<split>/<class>/*.jpg`): locate or download, scan, decode once, cache as uint8."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.data.archive import safe_extract
from bench.data.batches import Split, TaskData
from bench.data.fetch import describe_url_error, download, offline_mode
from bench.data.images import BadImage, load_photo
from bench.errors import DataError
from bench.files import cache_root, replacing, sha256_file, write_atomic
from bench.spec import PhotoFolder, PhotoInput, Profile, TaskSpec

CACHE_VERSION = 1


@dataclass
class Photos:
    """One split, decoded: x uint8 (N, S, S, 3), y int32 (N,), the files, and what was skipped."""

    x: np.ndarray
    y: np.ndarray
    files: list[str]
    classes: list[str]
    skipped: list[str] = field(default_factory=list)  # "path: reason"

    def __len__(self) -> int:
        return len(self.y)


def _natural(name: str) -> list:
    # cat.2.jpg before cat.10.jpg: the order a person expects and a prefix limit relies on.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _split_dir(base: Path, ds: PhotoFolder, role: str) -> Path | None:
    for name in ds.splits[role]:
        if (base / name).is_dir():
            return base / name
    return None


def find_root(ds: PhotoFolder, root: Path) -> Path | None:
    """The folder holding the splits: <root>/<dataset>/ itself or its single sub-folder (an extracted archive)."""
    top = root / ds.name
    if not top.is_dir():
        return None
    candidates = [top] + sorted(p for p in top.iterdir() if p.is_dir() and not p.name.startswith("."))
    for base in candidates:
        if all(_split_dir(base, ds, role) for role in ds.splits):
            return base
    return None


def _layout_hint(ds: PhotoFolder, root: Path) -> str:
    roles = ", ".join(f"{'|'.join(ds.splits[r])}/<class>/*.jpg" for r in ds.splits)
    return f"put the photos in {root / ds.name} as {roles}"


def ensure(ds: PhotoFolder, root: Path) -> Path:
    """The dataset's split folder, downloading and safely extracting the archive if it is missing."""
    if root.exists() and not root.is_dir():
        raise DataError(f"data root {root} is a file, not a folder; pass --data-root pointing to a folder")
    found = find_root(ds, root)
    if found is not None:
        return found
    if offline_mode():
        raise DataError(f"{ds.name}: no photos and offline (BENCH_OFFLINE set); {_layout_hint(ds, root)}")
    folder = root / ds.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {folder} ({exc.strerror}); pass a writable --data-root") from None
    archive, pin = folder / ds.archive_name, folder / (ds.archive_name + ".sha256")
    errors = []
    if not archive.exists():
        for url in ds.archive_urls:
            try:
                want = ds.archive_sha256 or (pin.read_text().strip() if pin.exists() else None)
                got = download(url, archive, want, hash_of=sha256_file, max_bytes=ds.archive_size * 2)
                break
            except (OSError, DataError) as exc:
                errors.append(describe_url_error(url, exc))
        else:
            raise DataError(f"{ds.name}: download failed ({'; '.join(errors)}); {_layout_hint(ds, root)}")
        if ds.archive_sha256 is None and not pin.exists():
            write_atomic(pin, got + "\n")  # not published upstream: later copies must match the first one
    if archive.stat().st_size != ds.archive_size:
        raise DataError(f"{archive}: {archive.stat().st_size} bytes, the published archive has {ds.archive_size}; "
                        "delete it")
    safe_extract(archive, folder, ds.max_extract_bytes)
    found = find_root(ds, root)
    if found is None:
        raise DataError(f"{archive} did not contain the expected layout; {_layout_hint(ds, root)}")
    return found



def list_split(ds: PhotoFolder, base: Path, role: str, limit: int | None) -> tuple[list[Path], list[int], list[str]]:
    """Files and labels of one split; with a limit, the first files of each class in turn (balanced)."""
    split = _split_dir(base, ds, role)
    assert split is not None
    classes = sorted(p.name for p in split.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) != ds.num_classes:
        raise DataError(f"{split}: {len(classes)} class folder(s) {classes}, {ds.name} needs {ds.num_classes}")
    per_class = []
    for c in classes:
        files = sorted((p for p in (split / c).iterdir() if p.is_file() and not p.name.startswith(".")),
                       key=lambda p: _natural(p.name))
        if not files:
            raise DataError(f"{split / c}: empty class folder; every class needs photos")
        per_class.append(files)
    paths: list[Path] = []
    labels: list[int] = []
    for i in range(max(len(f) for f in per_class)):  # round-robin: any prefix is balanced
        for label, files in enumerate(per_class):
            if i < len(files):
                paths.append(files[i])
                labels.append(label)
    if limit is not None:
        paths, labels = paths[:limit], labels[:limit]
    return paths, labels, classes


def _cache_file(base: Path, spec: PhotoInput, role: str, paths: list[Path]) -> Path:
    """Where one split's decoded photos are cached: keyed by the folder, the crop sizes and every file's
    name, size and modification time (any change decodes again)."""
    h = hashlib.sha256(json.dumps([CACHE_VERSION, spec.size, spec.resize_shorter]).encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.relative_to(base)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    folder = hashlib.sha256(str(base.resolve()).encode()).hexdigest()[:12]
    return cache_root() / "images" / folder / f"{role}-{spec.size}-{h.hexdigest()[:16]}.npz"


def load_split(spec: PhotoInput, ds: PhotoFolder, base: Path, role: str, limit: int | None) -> Photos:
    """Decode (or read from the cache) one split; unreadable files are skipped and named."""
    paths, labels, classes = list_split(ds, base, role, limit)
    cache = _cache_file(base, spec, role, paths)
    if cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as z:
                return Photos(z["x"], z["y"], list(z["files"]), list(z["classes"]), list(z["skipped"]))
        except (OSError, ValueError, KeyError):
            cache.unlink(missing_ok=True)  # damaged cache: decode again
    xs, ys, files, skipped = [], [], [], []
    for p, label in zip(paths, labels):
        try:
            xs.append(load_photo(p, spec))
        except BadImage as exc:
            skipped.append(str(exc))
            continue
        ys.append(label)
        files.append(str(p.relative_to(base)))
    for label, c in enumerate(classes):
        if label not in ys:
            raise DataError(f"{_split_dir(base, ds, role)}/{c}: no readable photo in this class")
    photos = Photos(np.stack(xs), np.asarray(ys, np.int32), files, classes, skipped)
    try:
        with replacing(cache) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, x=photos.x, y=photos.y, files=np.asarray(files, dtype=str),
                     classes=np.asarray(classes, dtype=str), skipped=np.asarray(skipped, dtype=str))
    except OSError:
        pass  # a cache is an optimisation; an unwritable one only costs decoding time
    return photos


def check_layout(ds: PhotoFolder, base: Path) -> None:
    """Both splits list the same classes, none empty: a broken folder is one error before any cell."""
    classes = {role: list_split(ds, base, role, None)[2] for role in ds.splits}
    if len({tuple(c) for c in classes.values()}) > 1:
        raise DataError(f"{base}: the splits have different class folders: {classes}")


def prepare(ds: PhotoFolder, profile: Profile, root: Path) -> str:
    """The folder there (downloaded and extracted once) and well formed; returns the data source."""
    base = ensure(ds, root)
    check_layout(ds, base)
    return f"images:{base}"


def load(task: TaskSpec, ds: PhotoFolder, profile: Profile, root: Path) -> TaskData:
    """Training and validation photos under a profile's limits, decoded once (uint8, cached)."""
    assert isinstance(task.input, PhotoInput), f"{task.name}: a photo folder feeds a photo input"
    base = ensure(ds, root)
    train = load_split(task.input, ds, base, "train", profile.train_limit)
    test = load_split(task.input, ds, base, "test", profile.test_limit)
    if train.classes != test.classes:
        raise DataError(f"{base}: training classes {train.classes} differ from validation classes {test.classes}")
    return TaskData(Split(train.x, train.y), None, Split(test.x, test.y), f"images:{base}", ds.eval_split,
                    train.skipped + test.skipped)
