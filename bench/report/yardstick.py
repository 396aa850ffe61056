"""The headline MFU: one peak per machine, device and precision for every framework, so MFUs compare.

A record's own `mfu` divides by its framework's own matmul peak: three frameworks, three denominators. The
yardstick of a group of records (same machine, device, GPU model, precision, threads on CPU, device count)
is the GPU datasheet's dense peak when the records know it, else the best matmul peak any framework there
measured. Computed at report time: records keep `mfu`, `peak_flops` and `nominal_peak_flops` as measured.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Group = tuple[Any, ...]


@dataclass(frozen=True)
class Yardstick:
    flops: float
    source: str  # "datasheet (NVIDIA H200)" or "best measured matmul (jax)"


def group(r: Any) -> Group:
    """Records that share one yardstick: the same host, CPU model and GPUs, device, precision, data-parallel
    width (a GPU peak scales with it), and on CPU the thread budget (the peak does too). Not device_name:
    each framework words it its own way."""
    env = r.env or {}
    threads = r.threads if r.device == "cpu" else None
    return (env.get("hostname"), env.get("cpu"), tuple(env.get("gpus") or ()), r.device, r.precision,
            getattr(r, "devices", 1), threads)


def yardsticks(records: list[Any]) -> dict[Group, Yardstick]:
    """Each group's yardstick, from its ok records; a group without any peak has none."""
    out: dict[Group, Yardstick] = {}
    for r in (r for r in records if r.status == "ok"):
        key, have = group(r), out.get(group(r))
        if r.device != "cpu" and r.nominal_peak_flops:  # the datasheet is the same for every framework
            out[key] = Yardstick(r.nominal_peak_flops, f"datasheet ({r.device_name or 'GPU'})")
        elif r.peak_flops and (have is None or (have.source.startswith("best") and r.peak_flops > have.flops)):
            out[key] = Yardstick(r.peak_flops, f"best measured matmul ({r.framework})")
    return out


def headline(records: list[Any]) -> list[float | None]:
    """Each record's headline MFU: achieved FLOP/s over its group's yardstick (None without either)."""
    sticks = yardsticks(records)
    out: list[float | None] = []
    for r in records:
        stick = sticks.get(group(r))
        out.append(r.achieved_flops / stick.flops if stick and r.achieved_flops and r.status == "ok" else None)
    return out


def describe(records: list[Any]) -> str | None:
    """One report line: which peak each group's headline MFU divides by."""
    sticks = yardsticks(records)
    if not sticks:
        return None
    parts = sorted({f"{g[3]} {g[4]}{' ×' + str(g[5]) if g[5] > 1 else ''}: {s.source}, "
                    f"{s.flops / 1e9:,.1f} GFLOP/s" for g, s in sticks.items()})
    return ("- MFU: achieved GFLOP/s over one peak per machine, device and precision, the same for every "
            "framework — " + "; ".join(parts) + " (each framework's own-peak MFU: the detailed table)")
