"""bench compare on records: thresholds, marks, the significance test with repeats, exit codes."""
import pytest

from bench.cli import main
from bench.errors import UsageError
from bench.records import Record, append, compare

T = compare.DEFAULT_THRESHOLDS


def rec(**kw) -> Record:
    base = dict(task="mnist_mlp", framework="torch", device="cpu", profile="smoke", dataset="mnist", seed=0, epochs=2,
                status="ok", spec_hash="h", test_accuracy=0.95, train_time_s=10.0, peak_host_rss_bytes=500 * 2**20,
                env={"cpu": "X", "cpus": 2, "gpus": []})
    return Record(**{**base, **kw})


def marks(base, cur, **th):
    return {(r.cell[1], r.metric): r.mark for r in compare.compare(base, cur, {**T, **th})}


def test_thresholds_parse_and_bad_ones_are_usage_errors():
    assert compare.parse_thresholds("time=5%,accuracy=1pp,latency=40%") == {
        "time": 5.0, "memory": 10.0, "accuracy": 1.0, "latency": 40.0, "throughput": 25.0, "size": 5.0}
    for bad in ("time=5", "speed=5%", "accuracy=1%", "time=5pp", "time=-1%"):
        with pytest.raises(UsageError):
            compare.parse_thresholds(bad)


def test_single_runs_are_judged_by_the_threshold():
    m = marks([rec()], [rec(train_time_s=10.9, test_accuracy=0.944, peak_host_rss_bytes=600 * 2**20)])
    assert m == {("torch", "time"): "unchanged", ("torch", "accuracy"): "worse", ("torch", "memory"): "worse"}
    m = marks([rec()], [rec(train_time_s=8.0, test_accuracy=0.96)])
    assert m[("torch", "time")] == "better" and m[("torch", "accuracy")] == "better"


def test_two_repeats_a_side_cannot_reach_the_level_so_the_threshold_decides_visibly():
    # exact one-sided Mann-Whitney at 2 and 2: its smallest p is 1/6, so the test would silence the gate
    base = [rec(seed=s, train_time_s=t) for s, t in enumerate([10.0, 10.2])]
    slower = [rec(seed=s, train_time_s=t) for s, t in enumerate([12.0, 12.3])]
    row = next(r for r in compare.compare(base, slower, T) if r.metric == "time")
    assert row.mark == "worse" and "cannot reach" in row.detail and "threshold only" in row.detail


def test_with_repeats_worse_needs_significance_as_well():
    base = [rec(seed=s, train_time_s=t) for s, t in enumerate([10.0, 10.2, 9.9])]
    slower = [rec(seed=s, train_time_s=t) for s, t in enumerate([12.0, 12.3, 11.9])]
    noisy = [rec(seed=s, train_time_s=t) for s, t in enumerate([9.0, 13.0, 11.5])]  # median +13 %, overlaps
    assert marks(base, slower)[("torch", "time")] == "worse"
    assert marks(base, noisy)[("torch", "time")] == "not significant"


def test_status_changes_and_cells_that_cannot_be_compared():
    base = [rec(), rec(framework="jax", status="failed", error="boom"), rec(framework="tf")]
    cur = [rec(status="failed", error="MemoryError: x"), rec(framework="jax"), rec(framework="tf", spec_hash="other"),
           rec(framework="tf", device="gpu")]
    m = marks(base, cur)
    assert m[("torch", "-")] == "newly failing" and m[("jax", "-")] == "fixed"
    rows = [r for r in compare.compare(base, cur, T) if r.cell[1] == "tf"]
    assert [r.mark for r in rows] == ["not comparable", "not comparable"]
    assert any("spec" in r.detail for r in rows) and any("only in the current" in r.detail for r in rows)


def test_cli_exit_codes_and_markdown(tmp_path, capsys):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    append(a, [rec(), rec(framework="jax")])
    append(b, [rec(train_time_s=10.5), rec(framework="jax")])
    append(c, [rec(train_time_s=13.0, env={"cpu": "Y", "cpus": 8, "gpus": []}), rec(framework="jax")])
    assert main(["compare", str(a), str(b)]) == 0
    assert "no regression in 2 cells" in capsys.readouterr().err
    assert main(["compare", str(a), str(c), "--format", "md"]) == 1
    out, err = capsys.readouterr()
    assert "| mnist_mlp | torch | cpu | time | 10.00 | 13.00 | +30.0 % | **worse** |" in out
    assert "another machine" in err and "1 regression" in err
    assert "baseline on X (2 CPUs), current on X (2 CPUs); Y (8 CPUs)" in err
    assert main(["compare", str(a), str(c), "--threshold", "time=50%"]) == 0
    capsys.readouterr()
    for args, msg in ((["compare", str(a), str(tmp_path / "none")], "no such file"),
                      (["compare", str(a), str(b), "--format", "pdf"], "--format"),
                      (["compare", str(a), str(b), "--threshold", "time=fast"], "--threshold")):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1
