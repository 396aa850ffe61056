"""`bench report --format/--output` and the reports `bench run` leaves beside its records."""
import json

import pandas as pd
import pytest

from bench.cli import main
from tests.cli.test_cli import bench
from tests.conftest import ROOT, has

FIXTURE = ROOT / "tests" / "data" / "smoke_3fw_2tasks_repeats2.jsonl"


@pytest.mark.parametrize("args,message", [
    (["--format", "pdf", "--output", "{out}/r.pdf"],
     "--format: unknown format 'pdf'; choose from md, html, csv, parquet"),
    (["--format", "md,,csv", "--output", "{out}/r"], "--format: empty name"),
    (["--format", "html"], "--format html needs --output PATH"),
    (["--output", "{file}/r.md"], "cannot write"),
    (["--format", "md,csv", "--output", "{file}/r"], "cannot write"),
])
def test_bad_format_or_output_is_one_line_exit_2_and_nothing_written(args, message, capsys, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    out = tmp_path / "out"
    argv = ["report", str(FIXTURE), *[a.format(out=out, file=a_file) for a in args]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_several_formats_write_one_file_each_beside_path(capsys, tmp_path):
    assert main(["report", str(FIXTURE), "--format", "md,html,csv,parquet",
                 "--output", str(tmp_path / "r" / "report.md")]) == 0
    err = capsys.readouterr().err
    files = {p.name: p for p in (tmp_path / "r").iterdir()}
    assert sorted(files) == ["report.csv", "report.html", "report.md", "report.parquet"]
    assert all(f"report: {p}" in err for p in files.values())
    assert "| mnist_cnn | jax | ok (2/2) |" in files["report.md"].read_text()
    assert files["report.html"].read_text().count("<img ") == 6
    assert len(pd.read_csv(files["report.csv"])) == len(pd.read_parquet(files["report.parquet"])) == 12


@pytest.mark.slow
@pytest.mark.skipif(not has("torch"), reason="needs torch")
def test_run_writes_markdown_and_html_reports_and_names_them(tmp_path):
    out = tmp_path / "run"
    res = bench("run", "--task", "mnist_mlp", "--framework", "torch", "--out", str(out))
    assert res.returncode == 0, res.stderr
    rec = json.loads((out / "records.jsonl").read_text())
    assert f"report:  {out / 'report.md'}\n         {out / 'report.html'}" in res.stderr
    page = (out / "report.html").read_text()
    assert f"{100 * rec['test_accuracy']:.2f} %" in page  # the table, from this run's record
    assert 'id="plot-accuracy"' in page and 'id="plot-curves-mnist_mlp"' in page and "warning" not in res.stderr
