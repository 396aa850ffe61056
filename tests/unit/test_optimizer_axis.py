"""The optimizer axis: the spec's rules by name, what a cell with another optimizer runs and hashes, the plan,
the record (old ones too), and how reports, compare and the inference section show it."""
import dataclasses
import json

import pytest

from bench.errors import UsageError
from bench.harness.cell import Cell
from bench.records import Record, cell_key
from bench.records.compare import compare, parse_thresholds, shown
from bench.records.schema import from_dict, to_json
from bench.report.markdown import markdown_report, spec_mismatches
from bench.report.tables import task_labels
from bench.runner import RunConfig, plan
from bench.spec import TASKS, optimizer_axis, spec_hash
from bench.spec.optimizers import NAMES, SGD, Adagrad, rule


def test_each_task_own_optimizer_is_its_entry_in_the_learning_rate_table():
    """The table and the tasks cannot drift apart: the task's own rule, rebuilt from the table, is the task."""
    for task in TASKS.values():
        own = optimizer_axis.own(task)
        lrs = optimizer_axis.LEARNING_RATES[task.name][own]
        assert tuple(rule(own, lr) for lr in lrs) == tuple(ph.optimizer for ph in task.phases)
        assert set(optimizer_axis.LEARNING_RATES[task.name]) == set(NAMES)


def test_rules_spell_out_the_constants_where_defaults_differ():
    assert rule("sgd", 0.01) == SGD(0.01, momentum=0.0, nesterov=False)
    assert rule("nesterov", 0.01) == SGD(0.01, momentum=0.9, nesterov=True, name="nesterov")
    assert rule("adagrad", 0.01) == Adagrad(0.01, initial_accumulator=0.1, eps=1e-7)  # torch starts at 0
    assert rule("adamw", 1e-3).weight_decay == 0.01  # Keras 0.004, optax 1e-4
    with pytest.raises(ValueError, match="unknown optimizer 'lamb'"):
        rule("lamb", 0.1)


def test_another_optimizer_changes_every_phase_and_the_hash_the_own_one_nothing():
    cats = TASKS["cats_vs_dogs"]
    assert optimizer_axis.apply(cats, "adam") is cats and optimizer_axis.apply(cats, None) is cats
    sgd = optimizer_axis.apply(cats, "momentum")
    assert [ph.optimizer for ph in sgd.phases] == [rule("momentum", 1e-2), rule("momentum", 1e-4)]
    assert [ph.trainable for ph in sgd.phases] == [ph.trainable for ph in cats.phases]
    assert spec_hash(sgd) != spec_hash(cats)
    assert len({spec_hash(optimizer_axis.apply(TASKS["mnist_mlp"], n)) for n in NAMES}) == len(NAMES)


def test_the_plan_runs_each_optimizer_for_every_framework_and_each_baseline_once(tmp_path):
    cfg = RunConfig(tasks=("mnist_mlp",), frameworks=("tf", "torch", "sklearn"), devices=("cpu",),
                    optimizers=("sgd", "adamw"), out=tmp_path)
    cells = plan(cfg)
    nets = [(c.optimizer, c.framework) for c in cells if c.framework != "sklearn"]
    assert nets == [("sgd", "tf"), ("sgd", "torch"), ("adamw", "tf"), ("adamw", "torch")]  # frameworks inside
    assert {c.optimizer for c in cells if c.framework == "sklearn"} == {None}
    assert len([c for c in cells if c.framework == "sklearn"]) == 3
    assert len({c.label() for c in cells}) == len(cells)  # no two cells share a log or cell file
    plain = plan(dataclasses.replace(cfg, optimizers=()))
    assert {c.optimizer for c in plain if c.framework != "sklearn"} == {"rmsprop"}  # named, not None
    assert all(c.inference for c in cells) and not any(c.inference for c in plan(
        dataclasses.replace(cfg, inference=False)))  # --no-inference reaches every cell


@pytest.mark.parametrize("optimizers,message", [(("sgd", "sgd"), "give each optimizer once"),
                                                (("adamax",), "--optimizer: unknown optimizer 'adamax'")])
def test_bad_optimizers_are_refused(optimizers, message, tmp_path):
    with pytest.raises(UsageError, match=message):
        RunConfig(tasks=("mnist_mlp",), frameworks=("torch",), devices=("cpu",), optimizers=optimizers, out=tmp_path)


def _rec(**kw) -> Record:
    base = dict(task="mnist_cnn", framework="torch", device="cpu", profile="smoke", dataset="mnist", seed=0,
                status="ok", spec_hash="h", epochs=2, test_accuracy=0.9, train_time_s=5.0)
    return Record(**{**base, **kw})


def test_records_from_before_the_axis_read_as_the_task_own_optimizer():
    old = json.loads(to_json(_rec()))
    old.pop("optimizer")
    rec = from_dict(old)
    assert rec.optimizer == "adam"
    assert cell_key(rec) == cell_key(_rec(optimizer="adam")) != cell_key(_rec(optimizer="sgd"))
    assert from_dict(json.loads(to_json(_rec(framework="sklearn", mode="svm", epochs=0)))).optimizer is None


def test_rows_compare_and_warnings_name_the_optimizer():
    recs = [_rec(optimizer="adam"), _rec(optimizer="sgd", spec_hash="h2"), _rec(framework="sklearn", mode="svm",
                                                                              epochs=0, optimizer=None)]
    assert task_labels(recs) == ["mnist_cnn (adam)", "mnist_cnn (sgd)", "mnist_cnn"]
    assert spec_mismatches(recs) == []  # each optimizer hashes the task as it ran
    assert spec_mismatches([*recs, _rec(optimizer="sgd", spec_hash="h3", seed=1)])[0].startswith("mnist_cnn with sgd")
    rows = compare(recs[:2], [dataclasses.replace(r, train_time_s=9.0) for r in recs[:2]], parse_thresholds(None))
    assert {shown(r.cell)[0] for r in rows} == {"mnist_cnn", "mnist_cnn sgd"}
    assert Cell(task="mnist_cnn", framework="jax", device="cpu", profile="smoke", dataset="mnist", seed=0, epochs=1,
                data_root="", weights_path="", optimizer="sgd").label() == "mnist_cnn/sgd/jax/cpu/s0"


def test_the_report_has_an_optimizer_table_and_the_inference_section():
    saved = {"state_dict": {"bytes": 139_000, "save_s": 0.005, "load_s": 0.01, "equal": True, "max_abs_diff": 0.0},
             "export": {"error": "RuntimeError: cannot export"},
             "npz": {"bytes": 138_000, "save_s": 0.002, "load_s": 0.02, "equal": False, "max_abs_diff": 3e-7}}
    inf = dict(latency_b1_s=0.0012, latency_b1_p99_s=0.004, predict_samples_per_s=5000.0, predict_batch=1000,
               saved=saved, saved_bytes=139_000)
    recs = [_rec(optimizer="adam", test_accuracy=0.95, **inf), _rec(optimizer="sgd", test_accuracy=0.91, **inf),
            _rec(framework="jax", mode="compiled", optimizer="sgd", test_accuracy=0.92, train_time_s=7.0)]
    md = markdown_report(recs)
    section = md[md.index("## Optimizers"):md.index("## Prediction")]
    assert "| adam | 0.001 | 95.00 % · 5.00 s | – |" in section
    assert "| sgd | 0.01 | 91.00 % · 5.00 s | 92.00 % · 7.00 s |" in section
    assert "the task's own optimizer is adam" in section
    pred = md[md.index("## Prediction"):]
    assert "| mnist_cnn (adam) | torch | cpu | 1.2 | 4 | 5,000 (batch 1000) |" in pred
    assert "| mnist_cnn (sgd) | torch | cpu | state_dict | 136 KiB | 5 | 10 | equal (bit for bit) |" in pred
    assert "| export | – | – | – | failed: RuntimeError: cannot export |" in pred
    assert "| npz | 135 KiB | 2 | 20 | differs: max abs 3.0e-07 |" in pred
    assert pred.index("state_dict") < pred.index("export") < pred.index("npz")  # the usual format first


def test_compare_gates_latency_throughput_and_size():
    base = [_rec(seed=s, latency_b1_s=0.001, predict_samples_per_s=1000.0, saved_bytes=2**20) for s in range(3)]
    slow = [dataclasses.replace(r, latency_b1_s=0.0015, saved_bytes=2**21) for r in base]
    rows = {r.metric: r.mark for r in compare(base, slow, parse_thresholds("latency=25%"))}
    assert rows["latency"] == "worse" and rows["size"] == "worse" and rows["throughput"] == "unchanged"
    assert {r.metric: r.mark for r in compare(base, slow, parse_thresholds("latency=60%,size=200%"))}["latency"] \
        == "unchanged"
