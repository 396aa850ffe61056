"""`bench history export`: what github-action-benchmark and Bencher read, value for value from the records."""
import json
import statistics
from dataclasses import replace
from pathlib import Path

from bench.cli import main
from bench.records import append, read_file
from bench.report import dashboards

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "smoke_3fw_3tasks_repeats2.jsonl"


def fixture():
    recs, problems = read_file(FIXTURE)
    assert not problems
    return recs


def test_bmf_holds_every_cell_and_metric_with_the_median_inside_its_bounds():
    recs = fixture()
    bmf = json.loads(dashboards.export(recs, "bmf"))
    ok = [r for r in recs if r.status == "ok"]
    assert len(bmf) == len({(r.task, r.framework) for r in ok}) == 9
    torch_mlp = [r for r in ok if (r.task, r.framework) == ("mnist_mlp", "torch")]
    entry = bmf["mnist_mlp/torch/cpu (smoke, mnist)"]
    assert entry["steady-step-ms"]["value"] == statistics.median(1e3 * r.steady_step_s for r in torch_mlp)
    assert entry["peak-memory-mib"]["value"] == statistics.median(r.peak_host_rss_bytes / 2**20 for r in torch_mlp)
    assert entry["accuracy-pct"]["value"] == statistics.median(100 * r.test_accuracy for r in torch_mlp)
    for measures in bmf.values():
        assert set(measures) == {s.slug for s in dashboards.SERIES}
        for m in measures.values():
            assert m["lower_value"] <= m["value"] <= m["upper_value"]
    acc = [m["accuracy-pct"] for m in bmf.values()]
    assert all(0 <= m["lower_value"] and m["upper_value"] <= 100 for m in acc)


def test_github_action_benchmark_is_smaller_is_better_with_accuracy_as_error():
    recs = fixture()
    entries = json.loads(dashboards.export(recs, "github-action-benchmark"))
    assert all(set(e) == {"name", "unit", "value", "range", "extra"} for e in entries)
    assert all(e["range"].startswith("± ") for e in entries)
    by_name = {e["name"]: e for e in entries}
    torch_mlp = [r for r in recs if (r.task, r.framework) == ("mnist_mlp", "torch") and r.status == "ok"]
    err = by_name["mnist_mlp/torch/cpu (smoke, mnist) test error"]
    assert err["unit"] == "%" and abs(err["value"] - (100 - statistics.median(100 * r.test_accuracy
                                                                                for r in torch_mlp))) < 1e-5
    assert "2 repeats" in err["extra"] and torch_mlp[0].run_id in err["extra"]
    assert not any("accuracy" in name for name in by_name)  # one direction per file: smaller is better


def test_only_each_cells_latest_run_is_exported():
    recs = [r for r in fixture() if r.status == "ok"]
    later = [replace(r, run_id="later", started_at="2099-01-01T00:00:00", steady_step_s=9.0) for r in recs
             if (r.task, r.framework) == ("mnist_mlp", "jax")]
    bmf = json.loads(dashboards.export(recs + later, "bmf"))
    assert bmf["mnist_mlp/jax/cpu (smoke, mnist)"]["steady-step-ms"]["value"] == 9000.0
    assert bmf["mnist_mlp/torch/cpu (smoke, mnist)"]["steady-step-ms"]["value"] < 9000.0


def test_cli_writes_the_file_and_refuses_a_bad_format(tmp_path, capsys):
    hist = tmp_path / "history.jsonl"
    append(hist, fixture())
    assert main(["history", "export", str(hist), "--format", "bmf", "--output", str(tmp_path / "b.json")]) == 0
    assert len(json.loads((tmp_path / "b.json").read_text())) == 9
    assert main(["history", "export", str(hist), "--format", "csv"]) == 2
    assert "choose github-action-benchmark or bmf" in capsys.readouterr().err
    assert main(["history", "export", str(tmp_path / "none"), "--format", "bmf"]) == 2
