"""The lint and type configuration in pyproject.toml holds: ruff over the code and tests, mypy over bench/."""
import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import ROOT, missing


@pytest.mark.parametrize("tool,args", [("ruff", ["check", "bench", "impls", "tests", "benchmarks"]), ("mypy", [])])
def test_the_tool_finds_nothing(tool, args):
    if importlib.util.find_spec(tool) is None:
        missing(f"{tool} is not installed (pip install -e '.[test]')")
    res = subprocess.run([sys.executable, "-m", tool, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
