"""Parsing and checking command-line values: every bad one is one clear line (a UsageError), never a traceback."""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.errors import UsageError
from bench.harness.adapter import FRAMEWORK_PACKAGES
from bench.spec import FRAMEWORKS
from bench.spec.sweep import BASELINE, TRAIN_SIZE_PRESETS


def choices(value: str, valid: Sequence[str], what: str, all_means: Sequence[str] | None = None) -> tuple[str, ...]:
    """'a,b' or 'all' (= `all_means`, default every valid name) -> a validated, de-duplicated tuple in the
    canonical order."""
    items = [v.strip() for v in value.split(",")]
    if not value.strip() or any(not v for v in items):
        raise UsageError(f"--{what}: empty name in {value!r}; choose from {', '.join(valid)} or all")
    bad = [v for v in items if v not in valid and v != "all"]
    if bad:
        raise UsageError(f"unknown {what} {bad[0]!r}; choose from {', '.join(valid)} or all")
    chosen = set(items) | (set(valid if all_means is None else all_means) if "all" in items else set())
    return tuple(v for v in valid if v in chosen)


def frameworks(value: str) -> tuple[str, ...]:
    """--framework: 'all' is the three deep-learning frameworks; the classical baselines are asked for by name."""
    return choices(value, (*FRAMEWORKS, BASELINE), "framework", all_means=FRAMEWORKS)


def train_sizes(text: str | None) -> tuple[int | None, ...]:
    """--train-size: a preset (bench/spec/sweep.py) or sizes such as 256,768,all; None (the flag left out): all."""
    if text is None:
        return (None,)
    if text.strip() in TRAIN_SIZE_PRESETS:
        return TRAIN_SIZE_PRESETS[text.strip()]
    sizes: list[int | None] = []
    for item in (v.strip() for v in text.split(",")):
        if item == "all":
            sizes.append(None)
            continue
        try:
            sizes.append(int(item.replace("_", "")))
        except ValueError:
            raise UsageError(f"--train-size: {item!r} is not a whole number, all, or a preset "
                             f"({', '.join(TRAIN_SIZE_PRESETS)})") from None
    return tuple(sizes)


def gpu_indices(text: str | None) -> tuple[int, ...] | None:
    """--gpu 0 or 0,1: distinct non-negative GPU indices; None (the flag left out): the default."""
    if text is None:
        return None
    items = [v.strip() for v in text.split(",")]
    if not all(v.isdigit() for v in items):  # isdigit: no sign, no blanks
        raise UsageError(f"--gpu {text!r}: give GPU indices as non-negative whole numbers, e.g. 0 or 0,1")
    out = tuple(int(v) for v in items)
    if len(set(out)) != len(out):
        raise UsageError(f"--gpu {text!r}: give each GPU once")
    return out


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value
    return parse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return value


def pythons(text: str | None) -> dict[str, str]:
    """--python fw=/path,... merged over $BENCH_PYTHON_<FW>; every interpreter must exist."""
    mapping = {fw: os.environ[f"BENCH_PYTHON_{fw.upper()}"] for fw in FRAMEWORKS
               if os.environ.get(f"BENCH_PYTHON_{fw.upper()}")}
    for item in filter(None, (text or "").split(",")):
        fw, sep, exe = item.partition("=")
        if not sep or fw.strip() not in FRAMEWORKS or not exe.strip():
            raise UsageError(f"--python: {item!r} is not FRAMEWORK=INTERPRETER with FRAMEWORK one of "
                             f"{', '.join(FRAMEWORKS)}")
        mapping[fw.strip()] = exe.strip()
    for fw, exe in mapping.items():
        found = shutil.which(exe)
        if not found:
            raise UsageError(f"interpreter for {fw} not found or not executable: {exe}")
        mapping[fw] = found
    return mapping


def slurm_options(items: list[str]) -> tuple[tuple[str, str], ...]:
    """--slurm-opt KEY=VALUE items as (key, value) pairs; a malformed one is one clear error."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"--slurm-opt {item!r} is not KEY=VALUE, e.g. --slurm-opt partition=gpu")
        out.append((key.strip().replace("-", "_"), value.strip()))
    return tuple(out)


def data_root(arg: Path | None) -> Path:
    from bench.data import default_data_root

    root = arg if arg is not None else default_data_root()
    if root.exists() and not root.is_dir():
        raise UsageError(f"--data-root {root} is a file; pass a folder")
    return root


def writable_folder(path: Path, flag: str = "--out") -> Path:
    """The folder, created if missing, after a test write: a bad one fails now, not after an hour of training."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to {path} ({exc.strerror or exc}); pass a writable {flag}") from None
    return path


def installed(framework: str) -> bool:
    """Whether the framework's packages are importable here (found, not imported)."""
    return all(importlib.util.find_spec(m) is not None for m in FRAMEWORK_PACKAGES[framework])

