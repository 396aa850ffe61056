"""Records: versioned, appended atomically by concurrent writers, damaged lines skipped and reported."""
import dataclasses
import json
import multiprocessing

import pytest

from bench import records
from bench.errors import RecordError
from bench.records import CELL_KEY, Record, cell_key


def rec(**kw) -> Record:
    base = dict(task="mnist_mlp", framework="torch", device="cpu", profile="smoke", dataset="mnist", seed=0,
                status="ok", spec_hash="abc", test_accuracy=0.9, train_time_s=1.0)
    return Record(**{**base, **kw})


def test_required_key_names_appear_exactly(tmp_path):
    path = tmp_path / "r.jsonl"
    records.append(path, [rec(peak_host_rss_bytes=10)])
    d = json.loads(path.read_text())
    for key in ("task", "framework", "device", "status", "test_accuracy", "train_time_s",
                "peak_host_rss_bytes", "peak_device_bytes", "spec_hash", "schema_version", "env", "error"):
        assert key in d
    assert records.read_file(path) == ([rec(peak_host_rss_bytes=10)], [])


def test_damaged_foreign_and_empty_lines_are_skipped_and_reported(tmp_path):
    path = tmp_path / "r.jsonl"
    good = records.to_json(rec())
    other_schema = json.dumps({**json.loads(good), "schema_version": 99})
    path.write_text(good + "\n\n" + good[:40] + "\n" + other_schema + "\n[1, 2]\n" + good + "\n")
    got, problems = records.read_file(path)
    assert len(got) == 2 and len(problems) == 3
    assert any("not valid JSON" in p for p in problems) and any("schema version 99" in p for p in problems)


def test_append_after_a_killed_writer_starts_a_fresh_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(records.to_json(rec())[:30])  # a writer died mid-line
    records.append(path, [rec(seed=7)])
    got, problems = records.read_file(path)
    assert [r.seed for r in got] == [7] and len(problems) == 1


def _writer(path, n, seed):
    for i in range(n):
        records.append(path, [rec(seed=seed * 1000 + i, error="x" * 5000)])


def test_concurrent_writers_never_interleave(tmp_path):
    path = tmp_path / "r.jsonl"
    procs = [multiprocessing.get_context("spawn").Process(target=_writer, args=(path, 40, s)) for s in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    got, problems = records.read_file(path)
    assert problems == [] and sorted(r.seed for r in got) == sorted(s * 1000 + i for s in range(4) for i in range(40))


def test_collect_folders_and_missing_paths(tmp_path):
    (tmp_path / "a").mkdir()
    records.append(tmp_path / "a" / "records.jsonl", [rec(), rec(framework="jax")])
    got, _ = records.collect([tmp_path])
    assert {r.framework for r in got} == {"torch", "jax"}
    with pytest.raises(RecordError, match="no such file"):
        records.collect([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordError, match="no .jsonl"):
        records.collect([tmp_path / "empty"])


def test_plan_is_pure_and_same_seed_repeats_differ_only_by_repeat_index(tmp_path):
    from bench.runner import RunConfig, plan

    cfg = RunConfig(tasks=("mnist_mlp",), frameworks=("tf", "torch"), devices=("cpu",), repeats=3, seed=7,
                    out=tmp_path / "out")
    cells = plan(cfg)
    assert [(c.seed, c.repeat, c.framework) for c in cells] == [
        (7, 0, "tf"), (7, 0, "torch"), (8, 1, "torch"), (8, 1, "tf"), (9, 2, "tf"), (9, 2, "torch")]  # rotated
    keys = [cell_key(c) for c in plan(dataclasses.replace(cfg, same_seed=True))]
    assert len(set(keys)) == 6 and {k[CELL_KEY.index("seed")] for k in keys} == {7}
    assert not (tmp_path / "out").exists()  # planning writes nothing: a bad run leaves no folder


def test_a_number_too_long_to_convert_or_absurd_nesting_is_a_damaged_line(tmp_path):
    path = tmp_path / "r.jsonl"
    huge, deep = '{"a": ' + "1" * 100_000 + "}", "[" * 100_000 + "]" * 100_000
    path.write_text(f"{huge}\n{deep}\n{records.to_json(rec())}\n")
    got, problems = records.read_file(path)
    assert len(got) == 1 and len(problems) == 2 and all("not valid JSON" in p for p in problems)


def test_many_damaged_lines_are_summarised(tmp_path, capsys):
    from bench.cli import main

    path = tmp_path / "noise.jsonl"
    path.write_bytes(bytes(range(256)) * 12 + b"\n".join([b"\xff\xfe garbage"] * 80))
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 7 and "more damaged or foreign lines" in err[-2] and err[-1].startswith("error:"), err
    assert records.summarize(["x"] * 6) == ["x"] * 6  # one more than the shown five is shown, not summarised
