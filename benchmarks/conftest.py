"""Benchmark session setup: CPU-only environment before any framework import, --bench-device, the overhead table."""
from __future__ import annotations

import importlib.util
import os

import pytest

from benchmarks import cases, paired


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench-device", choices=("cpu", "gpu"), default="cpu",
                     help="device the adapters are built on (default cpu; gpu: skipped where a framework sees none)")
    parser.addoption("--bench-threads", type=int, default=None, metavar="N",
                     help="CPU threads for every framework, set as bench run --threads does (default: all cores)")
    parser.addoption("--overhead-budget", type=float, default=cases.OVERHEAD_BUDGET_S, metavar="S",
                     help="seconds of timed epochs per harness-overhead case: more rounds, a narrower CI "
                          f"(default {cases.OVERHEAD_BUDGET_S:g})")


def pytest_configure(config: pytest.Config) -> None:
    cases.DEVICE = config.getoption("--bench-device")
    cases.OVERHEAD_BUDGET_S = config.getoption("--overhead-budget")
    if cases.OVERHEAD_BUDGET_S <= 0:
        raise pytest.UsageError("--overhead-budget must be > 0 seconds")
    # As the runner does for workers, before any framework is imported (frameworks load lazily
    # inside the benchmarks): quiet logs, Keras on TF, and on CPU no GPU initialisation at all.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if cases.DEVICE == "cpu":
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    threads = config.getoption("--bench-threads")
    if threads is not None:
        if threads < 1:
            raise pytest.UsageError("--bench-threads must be >= 1")
        # The thread budget bench/runner/isolation.py worker_env gives a worker, and the worker's core pinning
        # (JAX has no thread-count flag): on a loaded machine 1 thread avoids OpenMP barrier stalls.
        n = str(threads)
        os.environ.update(BENCH_THREADS=n, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n,
                          TF_NUM_INTRAOP_THREADS=n, TF_NUM_INTEROP_THREADS=n)
        cpus = sorted(os.sched_getaffinity(0))
        if threads < len(cpus):
            os.sched_setaffinity(0, cpus[:threads])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if importlib.util.find_spec("pytest_benchmark") is None:
        skip = pytest.mark.skip(reason="pytest-benchmark is not installed (pip install -e '.[test]')")
        for item in items:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if paired.ROWS:
        terminalreporter.write_sep("-", "protocol cost: step windows on/off, device-resident vs host input")
        for line in paired.table():
            terminalreporter.write_line(line)
    if cases.OVERHEAD_ROWS:
        terminalreporter.write_sep("-", "harness overhead: bench's epoch loop vs a bare loop, same model and batches")
        for line in cases.overhead_table():
            terminalreporter.write_line(line)
