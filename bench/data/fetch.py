"""Dataset files on disk and on the network: IDX decoding, sha256-verified downloads, mirrors, offline mode."""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import struct
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.errors import DataError
from bench.files import replacing
from bench.spec import IdxDataset

DOWNLOAD_TIMEOUT_S = 30.0
MAX_DOWNLOAD_BYTES = 200 * 2**20  # no IDX archive comes near this; a larger answer is refused


# ---------------------------------------------------------------- IDX files

_IDX_DTYPE = {0x08: np.uint8}


def parse_idx(raw: bytes, name: str, ndim: int) -> np.ndarray:
    """Decode IDX bytes, checking the magic number, rank and size against the header."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{name}: not an IDX file (bad magic number); replace it with the original file")
    dtype, rank = raw[2], raw[3]
    if dtype not in _IDX_DTYPE or rank != ndim:
        raise DataError(f"{name}: IDX type 0x{dtype:02x} rank {rank}, expected unsigned bytes of rank {ndim}")
    header = 4 + 4 * rank
    if len(raw) < header:
        raise DataError(f"{name}: truncated IDX header; replace the file")
    dims = struct.unpack(f">{rank}I", raw[4:header])
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(f"{name}: header promises {expected} bytes of data, file has {len(raw) - header} (truncated?)")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def read_gz(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError) as exc:  # BadGzipFile is an OSError
        raise DataError(f"{path}: cannot decompress ({exc}); delete it to download it again") from None


def content_sha256(path: Path) -> str:
    return hashlib.sha256(read_gz(path)).hexdigest()


# ---------------------------------------------------------------- locating and downloading


def mirrors_for(ds: IdxDataset) -> list[str]:
    """$BENCH_MIRRORS (comma-separated base URLs, tried first) then the dataset's public mirrors."""
    extra = [m.strip() for m in os.environ.get("BENCH_MIRRORS", "").split(",") if m.strip()]
    return [m if m.endswith("/") else m + "/" for m in extra] + list(ds.mirrors)


def download(url: str, dest: Path, sha256: str | None, timeout: float = DOWNLOAD_TIMEOUT_S, *,
             hash_of: Callable[[Path], str] = content_sha256, max_bytes: int = MAX_DOWNLOAD_BYTES) -> str:
    """Fetch url to dest through a temporary name; keep it only if hash_of(file) matches sha256.

    sha256=None accepts any hash (the caller pins what it got); the hash is returned.
    """
    with replacing(dest) as tmp:  # renamed onto dest only when this block succeeds
        total = 0
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
                while chunk := resp.read(1 << 20):
                    total += len(chunk)
                    if total > max_bytes:
                        raise DataError(f"{url}: larger than {max_bytes} bytes, refused")
                    out.write(chunk)
                promised = resp.headers.get("Content-Length")
                if promised is not None and promised.isdigit() and total != int(promised):
                    # read(n) returns what arrived when the server closes early; it does not raise.
                    raise DataError(f"{url}: the transfer was cut short ({total} of {promised} bytes); nothing kept")
        except TimeoutError:
            raise DataError(f"{url}: the server sent nothing for {timeout:g} s (after {total} bytes); gave up, "
                            "nothing kept") from None
        except http.client.IncompleteRead as exc:
            raise DataError(f"{url}: the transfer was cut short ({total + len(exc.partial)} bytes of "
                            f"{total + len(exc.partial) + (exc.expected or 0)}); nothing kept") from None
        except http.client.HTTPException as exc:
            raise DataError(f"{url}: broken HTTP response ({type(exc).__name__}); nothing kept") from None
        got = hash_of(tmp)
        if sha256 is not None and got != sha256:
            raise DataError(f"{url}: sha256 {got[:12]}… does not match the expected {sha256[:12]}…; deleted")
    return got


def offline_mode() -> bool:
    return os.environ.get("BENCH_OFFLINE", "") not in ("", "0")


def describe_url_error(base: str, exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"{base}: HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"{base}: {exc.reason}"
    return f"{base}: {exc}"


def _check_root(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise DataError(f"data root {root} is a file, not a folder; pass --data-root pointing to a folder")


def ensure_file(ds: IdxDataset, fname: str, root: Path, offline: bool | None = None) -> Path:
    """A verified local copy of one dataset file: data root, then system dirs, then mirrors."""
    _check_root(root)
    want = ds.content_sha256[fname]
    local = root / ds.name / fname
    if local.exists():
        got = content_sha256(local)
        if got != want:
            raise DataError(
                f"{local}: decompressed content sha256 {got[:12]}… is not the expected {want[:12]}…; "
                "it is not the original file: delete or replace it"
            )
        return local
    for d in ds.system_dirs:
        cand = Path(d) / fname
        if cand.exists() and content_sha256(cand) == want:
            return cand
    if offline is None:
        offline = offline_mode()
    errors: list[str] = []
    if not offline:
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create {local.parent} ({exc.strerror}); pass a writable --data-root") from None
        for base in mirrors_for(ds):
            try:
                download(base + fname, local, want)
                return local
            except (OSError, DataError) as exc:  # URLError and HTTPError are OSErrors
                errors.append(describe_url_error(base, exc))
    missing = [f for f in ds.content_sha256 if not (root / ds.name / f).exists()]
    why = "offline (BENCH_OFFLINE set)" if offline else "download failed (" + "; ".join(errors) + ")"
    raise DataError(f"{ds.name}: {', '.join(missing)} missing and {why}; put the files in {root / ds.name}")
