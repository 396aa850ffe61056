"""Report files: --format validation, the PATH rule, and CSV/parquet tables that round-trip through pandas."""
import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from bench import records
from bench.errors import UsageError
from bench.report import export
from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "data" / "smoke_3fw_3tasks_repeats2.jsonl"


@pytest.fixture(scope="module")
def real() -> list[records.Record]:
    return records.read_file(FIXTURE)[0]


def test_path_rule_one_format_is_the_file_several_replace_the_suffix():
    assert export.plan(None, None) == {}
    assert export.plan(None, Path("r.txt")) == {"md": Path("r.txt")}  # --output alone: Markdown, as before
    assert export.plan("html", Path("out/r.txt")) == {"html": Path("out/r.txt")}
    assert export.plan("md,html,csv,parquet,md", Path("out/report.md")) == {
        "md": Path("out/report.md"), "html": Path("out/report.html"), "csv": Path("out/report.csv"),
        "parquet": Path("out/report.parquet")}
    assert export.plan("CSV, html", Path("out/report")) == {"csv": Path("out/report.csv"),
                                                           "html": Path("out/report.html")}


@pytest.mark.parametrize("text,message", [("pdf", "unknown format 'pdf'"), ("md,,html", "empty name"),
                                          ("", "empty name"), (" ", "empty name")])
def test_bad_formats_are_refused_with_the_choices(text, message):
    with pytest.raises(UsageError, match=message) as exc:
        export.plan(text, Path("r.md"))
    assert "md, html, csv, parquet" in str(exc.value)


def test_format_without_output_is_refused():
    with pytest.raises(UsageError, match="needs --output PATH"):
        export.plan("html", None)


def test_csv_round_trip_gives_the_records_back(real, tmp_path):
    export.write_reports(real, [], {"csv": tmp_path / "r.csv"})
    df = pd.read_csv(tmp_path / "r.csv")
    assert len(df) == len(real) and list(df.columns) == [f.name for f in dataclasses.fields(records.Record)]
    for row, r in zip(df.to_dict("records"), real):
        for name in ("task", "framework", "device", "status", "seed", "spec_hash", "run_id"):
            assert row[name] == getattr(r, name)
        for name in ("test_accuracy", "train_time_s", "samples_per_s", "peak_host_rss_bytes"):
            assert math.isclose(row[name], getattr(r, name), rel_tol=1e-12)
        assert math.isnan(row["peak_device_bytes"]) and r.peak_device_bytes is None
        for name in ("history", "epoch_times_s", "env", "versions", "phases"):  # list/dict fields: JSON text
            assert json.loads(row[name]) == getattr(r, name)


def test_parquet_round_trip_is_the_same_table(real, tmp_path):
    export.write_reports(real, [], {"parquet": tmp_path / "r.parquet"})
    back = pd.read_parquet(tmp_path / "r.parquet")
    pd.testing.assert_frame_equal(back, export.flat_frame(real))
    assert str(back["seed"].dtype) == "Int64" and str(back["peak_device_bytes"].dtype) in ("Int64", "object")
    assert json.loads(back["history"][0]) == real[0].history and back["test_accuracy"][3] == real[3].test_accuracy


def test_values_parquet_cannot_store_are_one_error_and_no_file(real, tmp_path):
    from bench.errors import RecordError

    huge = dataclasses.replace(real[0], peak_host_rss_bytes=2**70)
    with pytest.raises(RecordError, match="parquet cannot store"):
        export.write_reports([huge], [], {"csv": tmp_path / "r.csv", "parquet": tmp_path / "r.parquet"})
    assert list(tmp_path.iterdir()) == []  # rendered first, written after: nothing half-done


def test_unwritable_output_is_a_usage_error(real, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    for path in (a_file / "r.md", tmp_path):  # below a file; a folder
        with pytest.raises(UsageError, match="cannot write"):
            export.write_reports(real, [], {"md": path})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no temporary file left behind
