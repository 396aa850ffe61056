"""Random argument lists and random record files thrown at the CLI: never a traceback, always 0/1/2."""
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import cli
from bench.cli import run as commands
from tests.conftest import has

SCRATCH = Path(tempfile.mkdtemp(prefix="bench-fuzz-"))
(SCRATCH / "a-file").write_text("not a folder")
(SCRATCH / "empty.jsonl").write_text("")
WORDS = [
    "run", "verify", "list", "report", "compare", "--threshold", "time=5%", "accuracy=1pp", "--format", "md",
    "ab", "HEAD", "HEAD~1", "no-such-rev", "--rounds", "--a", "--b", "--env-a", "X=1", "step=5%", "history", "export",
    "bmf", "github-action-benchmark",
    "--task", "--framework", "--device", "--profile", "--dataset", "--epochs",
    "--seed", "--threads", "--timeout", "--out", "--data-root", "--python", "--resume", "--output", "--bogus",
    "--mode", "--precision", "eager", "compiled", "default", "fp32", "bf16",
    "--train-size", "--baseline", "sklearn", "all,sklearn", "128,all", "standard", "200", "svm", "hog_logreg",
    "mnist_mlp", "mnist_cnn", "cats_vs_dogs", "all", ",", "", " ", "tf,torch", "jax", "mxnet", "cpu", "gpu",
    "cpu,gpu", "tpu", "smoke", "quick", "huge", "mnist", "fashion_mnist", "cifar10", "0", "1", "-3", "abc", "1e999",
    "nan", "99999999999", "torch=/nonexistent/python", "tf=", "=", "\x00", "é", str(SCRATCH / "a-file"),
    str(SCRATCH / "empty.jsonl"), str(SCRATCH / "missing"), str(SCRATCH),
]


class Reached(Exception):
    """Valid input got as far as training: the stubs stop it there (the fuzz test runs no worker)."""


def _stop(*args, **kwargs):
    raise Reached


@pytest.fixture
def cli_sandbox(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_OFFLINE", "1")  # a missing dataset is an error, never a download
    monkeypatch.setenv("BENCH_DATA", str(SCRATCH / "data"))
    monkeypatch.setenv("BENCH_CACHE", str(SCRATCH / "cache"))
    monkeypatch.chdir(tmp_path)  # results/<run id> of accepted runs land here
    monkeypatch.setattr(commands, "run", _stop)
    monkeypatch.setattr("bench.cli.verify.run_verify", _stop)
    monkeypatch.setattr("bench.cli.ab._rounds", _stop)


def _call(argv: list[str], capsys) -> None:
    capsys.readouterr()  # hypothesis reuses the fixture: drop the previous example's output
    try:
        code = cli.main(argv)
    except Reached:
        return
    except SystemExit as exc:  # only --help / -h exit through argparse, with 0
        assert exc.code == 0, argv
        return
    err = capsys.readouterr().err
    assert code in (0, 1, 2), (argv, code)
    assert "Traceback" not in err, (argv, err)
    if code == 2:  # one error line, after any warnings about skipped record lines
        lines = err.strip().splitlines()
        assert lines and lines[-1].startswith("error:"), (argv, err)
        assert all(line.startswith("warning:") for line in lines[:-1]), (argv, err)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(st.sampled_from(WORDS), max_size=7))
def test_random_argument_lists(cli_sandbox, capsys, argv):
    _call(argv, capsys)


RECORD = {"schema_version": 1, "task": "mnist_mlp", "framework": "tf", "device": "cpu", "profile": "smoke",
          "dataset": "mnist", "seed": 0, "status": "ok", "spec_hash": "x", "epochs": 2, "test_accuracy": 0.9}
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=8))
# history and phases entries: dicts with the keys the report reads, holding anything
KEYS = ["name", "epoch", "epochs", "train_loss", "val_loss", "val_accuracy", "time_s", "samples_per_s",
        "trainable_params"]
ENTRIES = st.lists(st.dictionaries(st.sampled_from(KEYS), SCALARS), max_size=2)
FIELD_VALUES = st.one_of(SCALARS, ENTRIES, st.lists(st.floats(), max_size=3),
                         st.dictionaries(st.text(max_size=3), st.one_of(st.integers(), st.text(max_size=3)),
                                         max_size=2))


@st.composite
def record_lines(draw) -> str:
    kind = draw(st.sampled_from(["valid", "mutated", "garbage", "truncated"]))
    rec = dict(RECORD)
    if kind == "garbage":
        return draw(st.text(max_size=40))
    if kind in ("mutated", "truncated"):
        for key in draw(st.lists(st.sampled_from([*RECORD, "history", "phases", "env", "error"]), max_size=3)):
            if draw(st.booleans()):
                rec.pop(key, None)
            else:
                rec[key] = draw(FIELD_VALUES)
    line = json.dumps(rec)
    return line[: draw(st.integers(0, len(line)))] if kind == "truncated" else line


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(record_lines(), max_size=6))
def test_random_record_files(cli_sandbox, capsys, tmp_path, lines):
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines))
    _call(["report", str(path), "--output", str(tmp_path / "report.md")], capsys)
    _call(["compare", str(path), str(path), "--format", "md"], capsys)


# Real runs (workers and all, nothing stubbed) with random options around one small cell: whatever the
# options, the run ends in 0/1/2 without a traceback, and every cell it ran is in its records file.
# Mostly valid options (so most examples really train), a few that must be refused or fail a cell.
RUN_OPTIONS = [("--repeats", "2"), ("--same-seed",), ("--seed", "7"), ("--threads", "1"), ("--mode", "eager"),
               ("--mode", "compiled"), ("--precision", "bf16"), ("--device", "gpu"), ("--device", "cpu,gpu"),
               ("--history",), ("--timeout", "0.5"), ("--dataset", "fashion_mnist"), ("--profile", "quick"),
               ("--epochs", "abc"), ("--repeats", "0"), ("--train-size", "128,all"), ("--train-size", "100")]


@pytest.mark.slow
@pytest.mark.skipif(not has("torch"), reason="needs torch")
@settings(max_examples=5, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(options=st.lists(st.sampled_from(RUN_OPTIONS), max_size=3))
def test_random_options_on_a_real_run(tmp_path_factory, monkeypatch, capsys, options):
    extra = [word for option in options for word in option]
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    monkeypatch.setenv("BENCH_DATA", str(SCRATCH / "data"))
    monkeypatch.setenv("BENCH_CACHE", str(SCRATCH / "cache"))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))  # --history's default folder lands here
    out = tmp_path_factory.mktemp("runs") / "run"
    argv = ["run", "--task", "mnist_mlp", "--framework", "torch", "--epochs", "1", *extra, "--out", str(out)]
    capsys.readouterr()
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code in (0, 1, 2) and "Traceback" not in err, (argv, code, err)
    if code == 2:
        assert err.strip().splitlines()[-1].startswith("error:") and not out.exists(), (argv, err)
        return
    recs = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    # Accepted options ended with a value argparse took: the last one given wins.
    last = {opt: extra[i + 1] for i, opt in enumerate(extra[:-1]) if opt in ("--repeats", "--device", "--train-size")}
    planned = ((2 if last.get("--repeats") == "2" else 1) * (2 if last.get("--device") == "cpu,gpu" else 1)
               * (2 if last.get("--train-size") == "128,all" else 1))
    assert len(recs) == planned, (argv, [r["status"] for r in recs])  # every planned cell recorded, none lost
    assert all(r["status"] in ("ok", "failed", "skipped") for r in recs) and (out / "report.md").exists()
    failed, ran = any(r["status"] == "failed" for r in recs), any(r["status"] == "ok" for r in recs)
    assert code == (1 if failed or not ran else 0), (argv, code, [r["status"] for r in recs])
