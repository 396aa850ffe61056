"""Processes by command line, from /proc: what the tests use to prove that nothing of a run outlived it."""
from __future__ import annotations

from pathlib import Path


def alive(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line contains `marker`."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if marker in (proc / "cmdline").read_bytes().decode(errors="replace") and \
                    (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                pids.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids
