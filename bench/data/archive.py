"""Safe extraction of downloaded archives: no path escapes the target, no links, a size ceiling."""
from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO

from bench.errors import DataError


def _safe_relpath(name: str, archive: Path) -> PurePosixPath:
    """The member's path if it stays inside the target folder; DataError otherwise."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (p.parts and p.parts[0].endswith(":")):
        raise DataError(f"{archive}: member {name!r} has an absolute path; refusing to extract this archive")
    if ".." in p.parts:
        raise DataError(f"{archive}: member {name!r} points outside the target folder; refusing to extract")
    return p


def _copy_limited(src: IO[bytes], dest: Path, budget: list[int], archive: Path) -> None:
    """Copy a member's bytes, counting what is really written (declared sizes can lie)."""
    with open(dest, "wb") as out:
        while chunk := src.read(1 << 20):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise DataError(f"{archive}: expands beyond the size limit; refusing (zip bomb?)")
            out.write(chunk)


def _extract_zip(archive: Path, target: Path, budget: list[int]) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{archive}: not a readable zip archive ({exc}); delete it to download it again") from None
    with zf:
        infos = zf.infolist()
        if sum(i.file_size for i in infos) > budget[0]:
            raise DataError(f"{archive}: declares more than {budget[0]} bytes uncompressed; refusing (zip bomb?)")
        for info in infos:
            rel = _safe_relpath(info.filename, archive)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise DataError(f"{archive}: member {info.filename!r} is a symbolic link; refusing to extract")
            dest = target.joinpath(*rel.parts)
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src:
                    _copy_limited(src, dest, budget, archive)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:  # CRC mismatch, truncation
                raise DataError(f"{archive}: member {info.filename!r} is corrupt ({exc})") from None


def _extract_tar(archive: Path, target: Path, budget: list[int]) -> None:
    try:
        tf = tarfile.open(archive)
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"{archive}: not a readable tar archive ({exc})") from None
    with tf:
        for m in tf:
            rel = _safe_relpath(m.name, archive)
            if m.issym() or m.islnk():
                raise DataError(f"{archive}: member {m.name!r} is a link; refusing to extract")
            dest = target.joinpath(*rel.parts)
            if m.isdir():
                dest.mkdir(parents=True, exist_ok=True)
            elif m.isfile():
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(m)
                assert src is not None
                _copy_limited(src, dest, budget, archive)
            else:
                raise DataError(f"{archive}: member {m.name!r} is a device or pipe; refusing to extract")


def safe_extract(archive: Path, target: Path, max_bytes: int) -> None:
    """Extract into target through a temporary folder, so a refused archive leaves nothing behind."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.extract")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        budget = [max_bytes]
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, tmp, budget)
        else:
            _extract_tar(archive, tmp, budget)
        target.mkdir(parents=True, exist_ok=True)
        for child in tmp.iterdir():
            dest = target / child.name
            if dest.exists():
                raise DataError(f"{dest} already exists; remove it or the archive before extracting again")
            os.replace(child, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
