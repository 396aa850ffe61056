"""The worker's memory probes: current RSS, and the kernel's peak counter reset to measure training alone."""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


def current_rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _status_kib(field: str) -> int | None:
    """A `VmXXX:  N kB` line of /proc/self/status, in bytes (Linux)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak_rss() -> dict[str, int | str | None]:
    """Reset the kernel's peak-RSS counter (VmHWM) so a later read covers only what follows.

    Writing "5" to /proc/self/clear_refs (Linux >= 4.0) sets VmHWM to the current RSS. It also
    lowers the ru_maxrss that wait4 reports for this process at exit, so the peak before the reset
    is returned (`setup_peak_rss_bytes`) for the runner to keep the whole-process peak right.
    """
    before = _status_kib("VmHWM")
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError as exc:
        why = f"peak RSS not reset: /proc/self/clear_refs: {exc.strerror or exc} (needs Linux >= 4.0)"
        return {"setup_peak_rss_bytes": before, "rss_at_reset_bytes": None, "train_rss_note": why}
    return {"setup_peak_rss_bytes": before, "rss_at_reset_bytes": _status_kib("VmHWM"), "train_rss_note": None}


def train_rss(reset: dict[str, int | str | None]) -> dict[str, int | str | None]:
    """Peak RSS since `reset_peak_rss()` and what it added over the RSS at the reset; None if no reset."""
    at_reset = reset.get("rss_at_reset_bytes")
    peak = _status_kib("VmHWM") if isinstance(at_reset, int) else None
    return {"train_peak_rss_bytes": peak,
            "train_added_rss_bytes": peak - at_reset if peak is not None and isinstance(at_reset, int) else None,
            "train_rss_note": reset.get("train_rss_note") or (None if peak is not None else "VmHWM unreadable")}


def start_training_rss(out: dict[str, Any], notify: Callable[..., None]) -> dict[str, int | str | None]:
    """The worker's reset after setup: the peak before it goes into the record and, as an event, to
    the runner at once (so even a worker killed later keeps its whole-process peak right)."""
    rss = reset_peak_rss()
    out.update(setup_peak_rss_bytes=rss["setup_peak_rss_bytes"], train_rss_note=rss["train_rss_note"])
    notify("rss_reset", setup_peak_rss_bytes=rss["setup_peak_rss_bytes"])
    return rss
