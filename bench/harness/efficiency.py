"""FLOPs, achieved FLOP/s and MFU of a finished cell, against a matmul peak measured once per machine."""
from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import machine
from bench.files import cache_root, write_atomic

# The microbenchmark: square matmuls of these sizes (the best one is the peak), `PEAK_REPEATS`
# timed repeats after a warm-up, each repeat long enough (MIN_REPEAT_S) for the clock and sync.
PEAK_SIZES: dict[str, tuple[int, ...]] = {"cpu": (512, 1024, 2048), "gpu": (8192,)}
PEAK_REPEATS = 5
MIN_REPEAT_S = 0.05
# A larger size is skipped when one product of it would take longer than this at the rate already
# measured: bf16 on a CPU without bf16 units is so slow that n=2048 alone would take minutes.
MAX_PRODUCT_S = 0.5
CACHE_VERSION = 2  # bump when the method changes: older measurements are then ignored
DTYPES = {"fp32": "float32", "bf16": "bfloat16"}  # a cell's precision -> the matmul dtype timed for it

Timer = Callable[[int, str, str], Callable[[int], float]]  # (n, dtype, device) -> (count -> seconds)

# Vendor datasheet peaks in TFLOP/s, dense (the datasheets' tensor-core figures "with sparsity"
# halved): fp32 on the CUDA cores (no TF32, as the cells run), bf16 on the tensor cores.
# Patterns are tried in order against the framework's device name (e.g. "NVIDIA H100 80GB HBM3").
NOMINAL_TFLOPS: tuple[tuple[str, str, float, float | None], ...] = (
    (r"H100.*PCIe", "H100 PCIe", 51.0, 756.0),
    (r"H100.*NVL", "H100 NVL", 60.0, 835.0),
    (r"H100", "H100 SXM", 67.0, 989.0),
    (r"H200.*NVL", "H200 NVL", 60.0, 835.0),
    (r"H200", "H200 SXM", 67.0, 989.0),
    (r"A100", "A100", 19.5, 312.0),
    (r"L40S", "L40S", 91.6, 362.0),
    (r"\bL4\b", "L4", 30.3, 121.0),
    (r"\bA10\b", "A10", 31.2, 125.0),
    (r"\bT4\b", "T4", 8.1, None),  # Turing: no bf16
)


def nominal_peak(device_name: str | None) -> dict[str, Any] | None:
    """{"device", "fp32", "bf16"} in FLOP/s for a known GPU model, else None."""
    for pattern, name, fp32, bf16 in NOMINAL_TFLOPS:
        if device_name and re.search(pattern, device_name):
            return {"device": name, "fp32": fp32 * 1e12, "bf16": None if bf16 is None else bf16 * 1e12}
    return None


def cache_path() -> Path:
    return cache_root() / "peak.json"


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def fingerprint(framework: str, versions: dict[str, str], device: str, device_name: str | None,
                dtype: str, sizes: tuple[int, ...]) -> dict[str, Any]:
    """What a measured peak depends on: another machine, thread budget or framework build re-measures."""
    return {"version": CACHE_VERSION, "framework": framework, "versions": dict(sorted(versions.items())),
            "device": device, "device_name": device_name, "cpu": machine.cpu_model(),
            "cpus": machine.available_cpus(), "threads": os.environ.get("BENCH_THREADS"),
            "dtype": dtype, "sizes": list(sizes), "repeats": PEAK_REPEATS}


def measure(timer: Timer, device: str, dtype: str, sizes: tuple[int, ...]) -> dict[str, Any]:
    """The best size's best and median FLOP/s over the repeats (2 n^3 FLOPs per product).

    Sizes are tried in increasing order; one whose single product would exceed MAX_PRODUCT_S at the
    best rate so far is skipped, with all larger ones ("sizes" lists those measured)."""
    best: dict[str, Any] = {}
    measured: list[int] = []
    for n in sorted(sizes):
        if best and 2 * n**3 / best["flops"] > MAX_PRODUCT_S:
            break
        measured.append(n)
        run = timer(n, dtype, device)
        run(1)  # warm-up: compilation, allocation, library autotuning
        count = max(1, math.ceil(MIN_REPEAT_S / max(run(1), 1e-6)))
        rates = [2 * n**3 * count / run(count) for _ in range(PEAK_REPEATS)]
        if not best or max(rates) > best["flops"]:
            best = {"flops": max(rates), "median_flops": statistics.median(rates), "n": n, "count": count}
    return {**best, "sizes": measured}


def _valid(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("flops"), (int, float)) and entry["flops"] > 0


def _read(path: Path, quiet: bool = False) -> dict[str, Any]:
    """The cache's entries; a missing file is empty, a damaged one is empty with a warning."""
    say = (lambda _: None) if quiet else warn
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        say(f"peak cache {path} is unreadable ({exc.strerror}); measuring again")
        return {}
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
            raise ValueError("not a peak cache object")
    except ValueError as exc:
        say(f"peak cache {path} is damaged ({str(exc)[:80]}); measuring again and rewriting it")
        return {}
    return data["entries"]


def _store(path: Path, key: str, entry: dict[str, Any]) -> None:
    """Add one entry under a lock (two workers may finish together), written atomically."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = {k: v for k, v in _read(path, quiet=True).items() if _valid(v)}  # warned already
            entries[key] = entry
            write_atomic(path, json.dumps({"entries": entries}, indent=1, sort_keys=True))
    except OSError as exc:
        warn(f"cannot write the peak cache {path} ({exc.strerror or exc}); the peak is used but not kept")


def lookup_peak(framework: str, device: str, dtype: str, versions: dict[str, str], device_name: str | None,
                timer: Timer, sizes: tuple[int, ...] | None = None, path: Path | None = None,
                at_least: float | None = None) -> dict[str, Any]:
    """The cached peak of this fingerprint, or a fresh measurement (then cached); "cached" says which.

    A cached peak below `at_least` (what the cell's training just achieved) was measured on a busy
    machine: noise only ever lowers a measured peak, so it is measured again and the higher of the
    two is kept ("remeasured" says why).
    """
    sizes = sizes or PEAK_SIZES[device]
    path = path or cache_path()
    fp = fingerprint(framework, versions, device, device_name, dtype, sizes)
    key = hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]
    found = _read(path).get(key)
    entry: dict[str, Any] | None = found if _valid(found) else None
    stale = entry is not None and at_least is not None and entry["flops"] < at_least
    if entry is not None and not stale:
        return {**entry, "cached": True}
    fresh = {**measure(timer, device, dtype, sizes), "fingerprint": fp,
             "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if entry is not None and at_least is not None:  # stale
        fresh["remeasured"] = (f"the cached {entry['flops'] / 1e9:,.1f} GFLOP/s ({entry.get('measured_at')}) was "
                               f"below the {at_least / 1e9:,.1f} GFLOP/s training achieved")
        if entry["flops"] > fresh["flops"]:
            fresh = {**entry, "remeasured": fresh["remeasured"] + "; the new measurement was lower still"}
    _store(path, key, {k: v for k, v in fresh.items() if k != "remeasured"})
    return {**fresh, "cached": False}


def _rate(flops: int | float, samples_per_s: float | None, peak: float | None) -> dict[str, float | None]:
    achieved = flops * samples_per_s if samples_per_s else None
    return {"achieved_flops": achieved, "mfu": achieved / peak if achieved and peak else None}


def annotate(out: dict[str, Any], cell: Any) -> None:
    """Worker hook, after training: FLOPs per sample, achieved FLOP/s, the peak and MFU into `out`
    (and into each phase of a transfer cell). The peak is the matmul peak of the cell's precision
    (fp32, or bf16); on GPU both are measured. A failed microbenchmark never fails the cell."""
    from bench.spec import TASKS
    from bench.spec.flops import task_flops

    flops = task_flops(TASKS[cell.task])
    precision = getattr(cell, "precision", "fp32")
    nominal = nominal_peak(out.get("device_name")) if cell.device == "gpu" else None
    peaks: dict[str, Any] = {"nominal": nominal}
    wanted = {"fp32", precision} | ({"bf16"} if cell.device == "gpu" else set())
    # The record and each transfer phase: each gets its FLOPs, achieved FLOP/s and MFU below.
    targets = [(out, flops["train"]), *[(ph, flops["phases"][ph["name"]]) for ph in out.get("phases", [])]]
    achieved = max(_rate(n, t.get("samples_per_s"), None)["achieved_flops"] or 0.0 for t, n in targets)
    for prec in sorted(wanted, key=list(DTYPES).index):
        try:
            timer = importlib.import_module(f"impls.{cell.framework}.peak").matmul_timer
            peaks[DTYPES[prec]] = lookup_peak(cell.framework, cell.device, DTYPES[prec], out.get("versions", {}),
                                              out.get("device_name"), timer,
                                              at_least=achieved if prec == precision and achieved > 0 else None)
        except Exception as exc:  # noqa: BLE001 - the cell's own results must survive a failed microbenchmark
            peaks[DTYPES[prec]] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            warn(f"{prec} matmul peak not measured ({peaks[DTYPES[prec]]['error']})")
    used = peaks[DTYPES[precision]]
    peak: float | None = used.get("flops")
    source: str | None = f"measured matmul {precision} n={used.get('n')}"
    nominal_used = nominal.get(precision) if nominal else None
    if peak is None:
        peak = nominal_used
        source = f"nominal {nominal['device']} {precision}" if nominal and nominal_used else None
    # Data-parallel on N GPUs: N times one GPU's peak (N CPU "devices" share the same cores: one peak).
    width = getattr(cell, "devices", 1) if cell.device == "gpu" else 1
    if width > 1:
        peak = peak * width if peak else peak
        nominal_used = nominal_used * width if nominal_used else nominal_used
        source = f"{source} x {width} devices" if source else source
    out.update(flops_per_sample=flops["train"], peak_flops=peak, peak_source=source, peaks=peaks,
               nominal_peak_flops=nominal_used)
    for target, per_sample in targets:
        target["flops_per_sample"] = per_sample
        target.update(_rate(per_sample, target.get("samples_per_s"), peak))
        target["mfu_nominal"] = _rate(per_sample, target.get("samples_per_s"), nominal_used)["mfu"]
