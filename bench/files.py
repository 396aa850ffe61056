"""File rules every part shares: writes a reader never sees half-done, and where caches live."""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block succeeds, removed
    when it fails. The rename is atomic: readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would surprise whoever reads a report or record
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write the whole file or nothing (through replacing())."""
    with replacing(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)


def user_cache() -> Path:
    """$XDG_CACHE_HOME/bench, else ~/.cache/bench: the default home of data and caches."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bench"


def cache_root() -> Path:
    """Where bench keeps what it can rebuild (decoded photos, the matmul peaks): $BENCH_CACHE, else
    user_cache(). Never beside the data: data folders may be read-only or shared."""
    return Path(os.environ["BENCH_CACHE"]) if os.environ.get("BENCH_CACHE") else user_cache()


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks (archives and weights are tens of MiB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
