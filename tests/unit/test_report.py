"""The comparison table: medians over repeats, failures shown, GPU speedup only with both devices."""
from bench.records import Record
from bench.report import markdown
from bench.report import tables as report


def rec(**kw) -> Record:
    base = dict(task="mnist_cnn", framework="tf", device="cpu", profile="smoke", dataset="mnist", seed=0, epochs=2,
                status="ok", spec_hash="h", test_accuracy=0.9, train_time_s=10.0, steady_epoch_s=1.0)
    return Record(**{**base, **kw})


def test_rows_are_task_by_framework_with_medians_and_speedup():
    recs = [rec(train_time_s=10.0), rec(train_time_s=30.0, seed=1), rec(train_time_s=20.0, seed=2),
            rec(device="gpu", train_time_s=4.0, peak_device_bytes=3 * 2**20),
            rec(framework="jax", status="failed", error="RuntimeError: boom", test_accuracy=None)]
    header, rows = report.table_rows(recs)
    assert header[:2] == ["task", "framework"] and header[-1] == "GPU speedup"
    tf_row, tf_gpu = dict(zip(header, rows[0])), dict(zip(header, rows[1]))
    # 3 repeats 10/20/30 s: median 20, mean 20 ± t(0.975, 2) 4.303 * sd 10 / sqrt(3) = ± 24.84; CV 10/20
    assert tf_row["CPU train s"] == "20.00 [-4.84–44.84] CV 50.0 %"
    assert tf_row["CPU status"] == "ok (3/3)"
    # a GPU row always names its mode; its speedup is over the framework's CPU row
    assert tf_gpu["framework"] == "tf (compiled, fp32)" and tf_gpu["GPU speedup"] == "5.0×"
    assert tf_gpu["GPU peak device mem"] == "3 MiB"
    jax_row = dict(zip(header, rows[2]))
    assert jax_row["CPU status"] == "failed" and jax_row["CPU accuracy"] == "–"
    md = markdown.markdown_report(recs)
    assert "RuntimeError: boom" in md and "| mnist_cnn | tf |" in md


def test_single_device_has_no_speedup_column():
    header, _ = report.table_rows([rec()])
    assert "GPU speedup" not in header and not any(h.startswith("GPU") for h in header)


def test_records_of_two_spec_versions_are_flagged():
    same = [rec(), rec(framework="torch")]
    assert markdown.spec_mismatches(same) == []
    mixed = same + [rec(framework="jax", spec_hash="other")]
    (warning,) = markdown.spec_mismatches(mixed)
    assert "mnist_cnn" in warning and "2 versions" in warning and "other" in warning
    assert warning in markdown.markdown_report(mixed, markdown.spec_mismatches(mixed))


def test_records_of_other_profiles_datasets_or_epochs_are_rows_of_their_own():
    recs = [rec(train_time_s=10.0), rec(train_time_s=20.0, seed=1), rec(profile="quick", train_time_s=100.0),
            rec(dataset="fashion_mnist", train_time_s=50.0), rec(epochs=5, train_time_s=70.0)]
    header, rows = report.table_rows(recs)
    got = {row[0]: dict(zip(header, row))["CPU train s"].split(" ")[0] for row in rows}
    assert got == {"mnist_cnn (smoke, mnist, 2 epochs)": "15.00", "mnist_cnn (quick, mnist, 2 epochs)": "100",
                   "mnist_cnn (smoke, fashion_mnist, 2 epochs)": "50.00", "mnist_cnn (smoke, mnist, 5 epochs)": "70.00"}
    header, rows = report.table_rows(recs[:2])
    assert [row[0] for row in rows] == ["mnist_cnn"]  # nothing varies: the plain task name
