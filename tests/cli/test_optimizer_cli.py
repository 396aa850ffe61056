"""`bench run --optimizer`: bad names refused before any cell; a real run of two optimizers in the three
frameworks with the prediction and saving columns, its report, and --resume that keeps optimizers apart."""
import json
from pathlib import Path

import pytest

from bench.spec import TASKS, optimizer_axis, spec_hash
from tests.cli.test_cli import ALL_FW, assert_bad_run, bench

BAD_OPTIMIZER_ARGS = [
    (["--optimizer", "adamax"], "unknown optimizer 'adamax'; choose from sgd, momentum, nesterov, adagrad"),
    (["--optimizer", "sgd,"], "--optimizer: empty name in 'sgd,'"),
]


@pytest.mark.parametrize("args,message", BAD_OPTIMIZER_ARGS, ids=[" ".join(a) for a, _ in BAD_OPTIMIZER_ARGS])
def test_bad_optimizers_are_one_clear_line_exit_2_and_nothing_run(args, message, capsys, tmp_path):
    assert_bad_run(args, message, capsys, tmp_path)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.skipif(not ALL_FW, reason="needs tf, torch and jax installed")
def test_two_optimizers_in_three_frameworks_with_prediction_and_saving(tmp_path):
    out = tmp_path / "run"
    p = bench("run", "--task", "mnist_mlp", "--framework", "all", "--optimizer", "sgd,adam", "--out", str(out))
    assert p.returncode == 0, p.stderr
    recs = _records(out)
    assert sorted((r["optimizer"], r["framework"]) for r in recs) == sorted(
        (o, fw) for o in ("sgd", "adam") for fw in ("tf", "torch", "jax"))
    for r in recs:
        assert r["status"] == "ok", r["error"]
        assert r["spec_hash"] == spec_hash(optimizer_axis.apply(TASKS["mnist_mlp"], r["optimizer"]))
        assert 0 < r["latency_b1_s"] <= r["latency_b1_p99_s"] and r["latency_calls"] == 200
        assert r["predict_samples_per_s"] > 0 and r["predict_batch"] == TASKS["mnist_mlp"].eval_batch_size
        assert r["reload_equal"] is True and r["saved_bytes"] > 4 * r["param_count"]
        assert all(s.get("equal") is True for s in r["saved"].values()), r["saved"]
    # The same weights, data and rule give the same model in every framework: accuracies agree closely.
    for opt in ("sgd", "adam"):
        accs = [r["test_accuracy"] for r in recs if r["optimizer"] == opt]
        assert max(accs) - min(accs) < 0.03, (opt, accs)
    report = (out / "report.md").read_text()
    assert "## Optimizers" in report and "| sgd | 0.01 |" in report and "| adam | 0.001 |" in report
    assert "mnist_mlp (sgd)" in report and "equal (bit for bit)" in report
    assert "curves-mnist_mlp-sgd" in (out / "report.html").read_text()
    again = bench("run", "--task", "mnist_mlp", "--framework", "all", "--optimizer", "sgd,adam", "--resume", str(out))
    assert again.returncode == 0, again.stderr
    assert len(_records(out)) == len(recs)  # every (optimizer, framework) cell was already done
