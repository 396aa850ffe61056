"""--mode / --precision on the command line: one-line errors, and a real compiled bf16 run that records them."""
import pytest

from bench import records
from tests.cli.test_cli import assert_bad_run, bench
from tests.conftest import has

BAD = [(["--mode", "fast"], "--mode: unknown mode 'fast'; choose from default, eager, compiled"),
       (["--mode", ""], "--mode: unknown mode ''"),
       (["--precision", "fp16"], "--precision: unknown precision 'fp16'; choose from fp32, bf16"),
       (["--precision", "BF16"], "--precision: unknown precision 'BF16'")]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_mode_or_precision_is_one_line_and_exit_2(args, message, capsys, tmp_path):
    assert_bad_run(args, message, capsys, tmp_path)


@pytest.mark.skipif(not has("torch"), reason="torch is not installed")
@pytest.mark.torch
def test_compiled_bf16_smoke_run_records_what_ran(tmp_path):
    out = tmp_path / "run"
    p = bench("run", "--framework", "torch", "--task", "mnist_mlp", "--mode", "compiled", "--precision", "bf16",
              "--epochs", "1", "--out", str(out))
    assert p.returncode == 0, p.stderr[-2000:]
    assert "mode compiled, precision bf16" in p.stderr
    (r,), problems = records.read_file(out / records.RECORDS_FILE)
    assert problems == [] and r.status == "ok"
    assert (r.mode, r.precision) == ("compiled", "bf16")
    assert r.settings["mode"].startswith("torch.compile") and "bfloat16" in r.settings["precision"]
    assert r.test_accuracy > 0.5  # chance is 0.10: the compiled bf16 model really learned
    assert "torch compiled, bf16" in (out / "report.md").read_text()
    assert (out / "logs" / "mnist_mlp_torch-compiled-bf16_cpu_s0.log").exists()
