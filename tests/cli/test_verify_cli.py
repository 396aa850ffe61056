"""`bench verify` when a framework is wrong: exit 1, the pair named; and it starts from varied biases."""
import sys

import pytest

from tests.cli.test_cli import bench, script
from tests.conftest import has


@pytest.mark.slow
@pytest.mark.skipif(not (has("torch") and has("jax")), reason="needs torch and jax")
def test_an_adapter_that_drops_its_biases_fails_verify_with_the_pair_named(tmp_path):
    # The real torch worker, its model's biases zeroed right after the build: from zero initial
    # biases (what verify used to start from) its logits would still match JAX's.
    (tmp_path / "no_bias_worker.py").write_text(
        "import runpy, sys, torch\n"
        "import impls.torch.adapter as a\n"
        "build = a.Adapter.build\n"
        "def no_bias(self, *args, **kw):\n"
        "    build(self, *args, **kw)\n"
        "    with torch.no_grad():\n"
        "        for name, p in self.model.named_parameters():\n"
        "            if name.endswith('bias'):\n"
        "                p.zero_()\n"
        "a.Adapter.build = no_bias\n"
        "sys.argv = ['bench.harness.worker'] + sys.argv[3:]\n"
        "runpy.run_module('bench.harness.worker', run_name='__main__')\n")
    python = script(tmp_path, "no-bias-python", f'exec {sys.executable} {tmp_path / "no_bias_worker.py"} "$@"')
    res = bench("verify", "--task", "mnist_mlp", "--framework", "torch,jax", "--out", str(tmp_path / "v"),
                "--python", f"torch={python}")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "mnist_mlp: torch vs jax differ by" in res.stderr and "Traceback" not in res.stderr
    assert "FAIL" in res.stdout
    # The same two frameworks unmodified agree: the failure above is the dropped biases.
    ok = bench("verify", "--task", "mnist_mlp", "--framework", "torch,jax", "--out", str(tmp_path / "ok"))
    assert ok.returncode == 0 and "1 framework pairs agree" in ok.stderr, ok.stdout + ok.stderr
