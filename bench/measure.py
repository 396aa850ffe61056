"""Clocks, memory probes and the per-epoch timing summary (the harness owns the clock)."""
from __future__ import annotations

import os
import resource
import statistics
import sys
import time

clock = time.perf_counter  # monotonic, highest resolution; read only after the adapter's sync()


def peak_rss_bytes(who: int = resource.RUSAGE_SELF) -> int:
    """Peak resident set size; ru_maxrss is KiB on Linux but bytes on macOS."""
    rss = resource.getrusage(who).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def current_rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def epoch_summary(epoch_times: list[float], samples_per_epoch: int) -> dict[str, float | None]:
    """First epoch (compile, autotune, caches) apart from the median of the steady ones."""
    if not epoch_times:
        return {"first_epoch_s": None, "steady_epoch_s": None, "samples_per_s": None}
    first = epoch_times[0]
    steady = statistics.median(epoch_times[1:]) if len(epoch_times) > 1 else None
    # With a single epoch there is no steady state: throughput is then the first epoch's.
    basis = steady if steady is not None else first
    return {
        "first_epoch_s": first,
        "steady_epoch_s": steady,
        "samples_per_s": samples_per_epoch / basis if basis > 0 else None,
    }
