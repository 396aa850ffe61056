"""The benchmarks/ suite stays runnable: its ids are stable and one cheap case runs end to end (--benchmark-disable)."""
import importlib.util
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, needs

pytestmark = [
    pytest.mark.torch,
    needs("torch"),
    pytest.mark.skipif(importlib.util.find_spec("pytest_benchmark") is None,
                       reason="pytest-benchmark is not installed (pip install -e '.[test]')"),
]


def _pytest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_benchmark_ids_are_stable():
    # --benchmark-compare matches saved runs by these names: renaming one silently drops its history.
    proc = _pytest("--collect-only", "-q")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    ids = set(re.findall(r"::(test_\w+\[[\w-]+\])", proc.stdout))
    for fw in ("tf", "torch", "jax"):
        assert f"test_train_step[{fw}-mnist_cnn]" in ids
        assert f"test_train_step[{fw}-cats_vs_dogs-fine_tuning]" in ids
        assert f"test_predict[{fw}-cats_vs_dogs]" in ids
        assert f"test_harness_overhead[{fw}-mnist_mlp]" in ids
        assert f"test_step_windows_cost[{fw}-cats_vs_dogs-feature_extraction]" in ids
        assert f"test_device_resident_vs_host_input[{fw}-mnist_cnn]" in ids
    assert len(ids) == 3 * (4 + 3 + 3 + 3 + 2), sorted(ids)


def test_one_case_runs_end_to_end():
    # torch + mnist_mlp: the cheapest case; train step, predict and the harness-overhead table.
    proc = _pytest("-k", "torch-mnist_mlp", "--benchmark-disable", "-q")
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
    assert re.search(r"\b5 passed\b", out), out[-2000:]
    pct = r"[+-]\d+\.\d\d"
    row = rf"^torch\s+mnist_mlp\s+[\d,.]+\s+[\d,.]+\s+{pct}%\s+\[{pct}, {pct}\] %\s+{pct}%\s+1$"  # one round
    assert re.search(row, out, re.M), out[-2000:]
    assert "these figures are not measurements" in out  # one round under --benchmark-disable, and it says so
    for what in ("step windows on / off", "device-resident / host"):  # the protocol-cost table, one round
        assert re.search(rf"^{what}\s+torch\s+mnist_mlp\s+[\d.]+\s+[\d.]+\s+{pct}%.*\s1$", out, re.M), out[-2000:]
