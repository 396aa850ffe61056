"""Named baselines keyed by machine fingerprint, compare by name, and the per-machine run history."""
import json

import pytest

from bench.cli import main
from bench.errors import RecordError, UsageError
from bench.records import Record, append, baseline, history, read_file
from bench.report import trend

ENV = {"cpu": "AMD EPYC 7B13", "cpus": 2, "gpus": []}


def rec(**kw) -> Record:
    base = dict(task="mnist_mlp", framework="torch", device="cpu", profile="smoke", dataset="mnist", seed=0, epochs=2,
                status="ok", spec_hash="h", test_accuracy=0.95, train_time_s=10.0, peak_host_rss_bytes=500 * 2**20,
                env=dict(ENV, commit="abc123"), versions={"torch": "2.13.0", "python": "3.11.7"}, run_id="r1",
                started_at="2026-11-20T10:00:00+00:00")
    return Record(**{**base, **kw})


def test_fingerprint_separates_cpus_gpus_and_framework_versions_but_merges_one_runs_frameworks():
    one_run = [rec(), rec(framework="jax", versions={"jax": "0.10.2", "python": "3.11.7"})]
    slug, desc = baseline.fingerprint(one_run)
    assert slug.startswith("amd-epyc-7b13-2cpu-") and desc["versions"] == {"jax": "0.10.2", "python": "3.11.7",
                                                                            "torch": "2.13.0"}
    others = [[rec(env=dict(ENV, cpus=8))], [rec(env=dict(ENV, gpus=["NVIDIA H100"]))],
              [rec(versions={"torch": "2.14.0", "python": "3.11.7"})]]
    slugs = {baseline.fingerprint(o)[0] for o in others} | {baseline.fingerprint([rec()])[0]}
    assert len(slugs) == 4 and any("nvidia-h100" in s for s in slugs)
    with pytest.raises(UsageError, match="2 different machines"):
        baseline.fingerprint([rec(), rec(framework="tf", env=dict(ENV, cpu="Intel Xeon"))])


def test_save_list_and_resolve_by_name(tmp_path):
    runs, root = tmp_path / "run.jsonl", tmp_path / "baselines"
    append(runs, [rec(status="failed", error="boom"), rec()])  # a resumed cell: only its latest record is kept
    folder, n = baseline.save("smoke-cpu", [runs], root)
    assert n == 1 and folder.parent.parent == root and read_file(folder / "records.jsonl")[0][0].status == "ok"
    meta = json.loads((folder / "baseline.json").read_text())
    assert meta["machine"]["cpu"] == "AMD EPYC 7B13" and meta["tasks"] == ["mnist_mlp"]
    assert meta["commits"] == ["abc123"]
    with pytest.raises(UsageError, match="already exists"):
        baseline.save("smoke-cpu", [runs], root)
    baseline.save("smoke-cpu", [runs], root, force=True)
    assert [m["name"] for m in baseline.available(root)] == ["smoke-cpu"]
    assert baseline.resolve("smoke-cpu", [rec()], root) == (folder, None)
    # After a torch upgrade on the same machine the baseline is found, with the difference named.
    path, warning = baseline.resolve("smoke-cpu", [rec(versions={"torch": "2.14.0", "python": "3.11.7"})], root)
    assert path == folder and "torch 2.13.0 -> 2.14.0" in warning
    assert baseline.resolve(str(runs), [rec()], root) == (runs, None)  # an existing path is a path
    with pytest.raises(UsageError, match="stored baselines: smoke-cpu"):
        baseline.resolve("nightly", [rec()], root)


@pytest.mark.parametrize("name", ["", "a/b", "-x", "x" * 65, "a b"])
def test_bad_baseline_names(name):
    with pytest.raises(UsageError, match="baseline name"):
        baseline.check_name(name)


def test_save_refuses_damaged_or_useless_records(tmp_path):
    damaged = tmp_path / "d.jsonl"
    append(damaged, [rec()])
    damaged.write_text(damaged.read_text() + '{"task": "mnist_m')
    with pytest.raises(RecordError, match="damaged"):
        baseline.save("x", [damaged], tmp_path / "b")
    failed = tmp_path / "f.jsonl"
    append(failed, [rec(status="failed", error="boom")])
    with pytest.raises(RecordError, match="no ok records"):
        baseline.save("x", [failed], tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_cli_baseline_then_compare_by_name(tmp_path, capsys):
    base, cur, other = tmp_path / "base.jsonl", tmp_path / "cur.jsonl", tmp_path / "other.jsonl"
    append(base, [rec(), rec(framework="jax", versions={"jax": "0.10.2"})])
    append(cur, [rec(train_time_s=13.0, run_id="r2"), rec(framework="jax", versions={"jax": "0.10.2"}, run_id="r2")])
    append(other, [rec(task="cats_vs_dogs", dataset="cats_vs_dogs")])
    root = str(tmp_path / "bl")
    assert main(["baseline", "save", "smoke-cpu", str(base), "--dir", root]) == 0
    assert main(["baseline", "list", "--dir", root]) == 0
    assert "smoke-cpu" in capsys.readouterr().out
    assert main(["compare", "smoke-cpu", str(cur), "--baselines", root]) == 1
    out, err = capsys.readouterr()
    assert "worse" in out and "another machine" not in err
    # A baseline of another task set is bad input: one line naming what each side holds, exit 2.
    assert main(["compare", "smoke-cpu", str(other), "--baselines", root]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing to compare" in err and "cats_vs_dogs" in err
    # Same cells but every one from another spec version (a changed spec): nothing compared is exit 2 too.
    stale = tmp_path / "stale.jsonl"
    append(stale, [rec(spec_hash="new", run_id="r3"), rec(framework="jax", spec_hash="new", run_id="r3")])
    assert main(["compare", "smoke-cpu", str(stale), "--baselines", root]) == 2
    assert "no cell could be compared (different spec versions" in capsys.readouterr().err
    for args, msg in ((["baseline", "save", "a/b", str(base), "--dir", root], "baseline name"),
                      (["baseline", "save", "x", str(tmp_path / "none"), "--dir", root], "no such file"),
                      (["baseline", "save", "smoke-cpu", str(base), "--dir", root], "--force"),
                      (["compare", "nightly", str(cur), "--baselines", root], "stored baselines: smoke-cpu")):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1


def test_history_keeps_one_file_per_machine_and_a_point_per_run(tmp_path):
    root = tmp_path / "history"
    files = history.append([rec(), rec(seed=1, train_time_s=12.0)], root)
    history.append([rec(run_id="r2", started_at="2026-11-21T10:00:00+00:00", train_time_s=8.0,
                        versions={"torch": "2.14.0"}, env=dict(ENV, commit="def456"))], root)
    history.append([rec(run_id="r3", env=dict(ENV, cpu="Intel Xeon"))], root)
    assert len(files) == 1 and len(list(root.glob("*.jsonl"))) == 2  # a torch upgrade stays on the machine's trend
    recs, problems = read_file(files[0])
    points = history.trend(recs)
    (cell, pts), = points.items()
    assert not problems and [p.run_id for p in pts] == ["r1", "r2"]
    assert pts[0].train_time_s == 11.0 and pts[0].n_ok == 2 and pts[1].commit == "def456"
    assert "torch 2.14.0" in pts[1].versions
    header, rows = trend.table_rows(points)
    assert len(rows) == 2 and rows[1][header.index("train s")] == "8.00"
    (plot,) = trend.trend_plots(points)
    assert "mnist_mlp" in plot.title and plot.png[:8] == b"\x89PNG\r\n\x1a\n" and len(plot.png) > 5000
    assert "abc123 11.00 s" in plot.alt and "def456 8.00 s" in plot.alt


def test_report_history_table_and_files(tmp_path, capsys, monkeypatch):
    hist = tmp_path / "history"
    history.append([rec()], hist)
    history.append([rec(run_id="r2", started_at="2026-11-21T10:00:00+00:00", train_time_s=8.0,
                        env=dict(ENV, commit="def456"))], hist)
    out = tmp_path / "trend.md"
    assert main(["report", "--history", str(hist), "--format", "md,html,csv", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "abc123" in text and "def456" in text
    md = out.read_text()
    assert md.index("abc123") < md.index("def456") and "| 8.00 |" in md
    page = out.with_suffix(".html").read_text()
    assert page.count("data:image/png;base64,") == 1 and "http://" not in page and "https://" not in page
    assert len(out.with_suffix(".csv").read_text().splitlines()) == 3
    monkeypatch.chdir(tmp_path)  # no results/history here
    assert main(["report", "--history"]) == 2
    assert "bench run --history" in capsys.readouterr().err
    assert main(["report"]) == 2
    assert "give RESULTS" in capsys.readouterr().err


def test_committed_baselines_match_the_current_spec():
    # A baseline made before a spec change compares nothing ("not comparable"): refresh it with the change.
    from bench.spec import TASKS, spec_hash
    from tests.conftest import ROOT

    files = sorted((ROOT / "results" / "baselines").glob("*/*/records.jsonl"))
    assert files, "no committed baseline"
    for f in files:
        recs, problems = read_file(f)
        assert recs and not problems, f
        stale = {(r.task, r.spec_hash) for r in recs if r.spec_hash != spec_hash(TASKS[r.task])}
        assert not stale, f"{f.parent.name}: records of another spec {sorted(stale)}; refresh it (save --force)"
