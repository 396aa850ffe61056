"""Record files: JSONL appended atomically by concurrent writers, read back with damaged lines skipped."""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.errors import RecordError
from bench.records.schema import Record, cell_key, from_dict, to_json

RECORDS_FILE = "records.jsonl"


def append(path: Path, records: Iterable[Record]) -> None:
    """Append whole lines under an exclusive lock, one write each, then fsync.

    O_APPEND plus the lock keeps two bench processes on one file from interleaving; a crash
    can leave at most a final partial line, which readers skip and report.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # A previous writer killed mid-line must not glue its fragment onto our record.
        size = os.fstat(fd).st_size
        needs_newline = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        for rec in records:
            data = ("\n" if needs_newline else "") + to_json(rec) + "\n"
            needs_newline = False
            os.write(fd, data.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path: Path) -> tuple[list[Record], list[str]]:
    """Records of one JSONL file, and one warning per damaged or foreign line (never raises on content)."""
    records: list[Record] = []
    problems: list[str] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise RecordError(f"{path}: cannot read ({exc.strerror})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            records.append(from_dict(json.loads(line), where))
        except (RecordError, TypeError) as exc:
            problems.append(f"{exc}, skipped")
        except (ValueError, RecursionError):  # bad JSON, an integer too long to convert, absurd nesting
            problems.append(f"{where}: not valid JSON (damaged line), skipped")
    return records, problems


def summarize(problems: list[str], shown: int = 5) -> list[str]:
    """The first few problems, then how many more: a damaged file of a thousand lines is a few lines of output."""
    if len(problems) <= shown + 1:
        return problems
    return [*problems[:shown], f"… and {len(problems) - shown} more damaged or foreign lines, skipped"]


def collect(paths: Iterable[Path], latest_per_file: bool = False) -> tuple[list[Record], list[str]]:
    """Records from files and folders (every records.jsonl below a folder).

    latest_per_file: within each file keep only the latest record of a cell (a resumed run's retried
    cell replaces its failure); records of the same cell in different files all stay.
    """
    records: list[Record] = []
    problems: list[str] = []
    for p in paths:
        if p.is_dir():
            files = sorted(p.rglob("*.jsonl"))
            if not files:
                raise RecordError(f"{p}: no .jsonl record files in this folder; pass a run folder or a records file")
        elif p.exists():
            files = [p]
        else:
            raise RecordError(f"{p}: no such file or folder")
        for f in files:
            recs, probs = read_file(f)
            records += latest(recs) if latest_per_file else recs
            problems += probs
    return records, problems


def latest(records: list[Record]) -> list[Record]:
    """The last record of each cell, in first-seen order: a resumed cell replaces its failure."""
    last: dict[tuple[Any, ...], Record] = {}
    for rec in records:
        last[cell_key(rec)] = rec  # a dict keeps the key's first position and takes the new value
    return list(last.values())


def frame(records: list[Record]) -> Any:
    """A pandas DataFrame, one row per record (pandas is imported only here)."""
    import pandas as pd

    return pd.DataFrame([dataclasses.asdict(r) for r in records])
