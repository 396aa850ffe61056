"""A size sweep in the reports: curves from records, crossover sizes in words, tables, plots, row order."""
import dataclasses
import math

import pytest

from bench.records import Record
from bench.report import sweep, sweep_plots
from bench.report.html import html_report
from bench.report.markdown import markdown_report
from bench.report.tables import order_tasks, task_labels

SIZES = (256, 768, 2560, 7680, None)


def rec(fw: str, n: int | None, acc: float, seed: int = 0, mode: str = "eager", time: float = 10.0) -> Record:
    return Record(task="mnist_cnn", framework=fw, device="cpu", profile="quick", dataset="mnist", seed=seed,
                  status="ok", spec_hash="h", mode=mode, epochs=0 if fw == "sklearn" else 2, train_size=n,
                  n_train=n or 54000, test_accuracy=acc, train_time_s=time)


def sweep_records() -> list[Record]:
    cnn = [0.80, 0.90, 0.95, 0.97, 0.99]
    svm = [0.85, 0.91, 0.94, 0.96, 0.97]
    logreg = [0.82, 0.86, 0.88, 0.90, 0.91]
    out = []
    for seed, jitter in ((0, 0.0), (1, 0.004), (2, -0.004)):
        out += [rec("torch", n, a + jitter, seed) for n, a in zip(SIZES, cnn)]
    out += [rec("sklearn", n, a, mode="svm", time=(n or 54000) / 100) for n, a in zip(SIZES, svm)]
    out += [rec("sklearn", n, a, mode="logreg") for n, a in zip(SIZES, logreg)]
    return out


def test_curves_take_medians_over_repeats_with_an_interval():
    (key, cs), = sweep.curves(sweep_records()).items()
    assert key == ("mnist_cnn", "mnist")
    assert [c.label for c in cs] == ["torch", "sklearn logreg", "sklearn svm"]
    torch = cs[0]
    assert [p.n for p in torch.points] == [256, 768, 2560, 7680, 54000]  # `all` is the split's size
    assert torch.points[0].accuracy == pytest.approx(0.80) and torch.points[0].runs == 3
    low, high = torch.points[0].accuracy_ci
    assert low < 0.80 < high and high - low < 0.03
    assert cs[2].points[0].accuracy_ci is None  # one run: no interval


def test_crossover_is_interpolated_on_a_log_scale_between_the_sizes_around_the_change():
    cs = sweep.curves(sweep_records())[("mnist_cnn", "mnist")]
    torch, logreg, svm = cs
    # torch - svm: -0.05, -0.01, +0.01, +0.01, +0.02: the sign changes between 768 and 2560, halfway
    want = math.exp((math.log(768) + math.log(2560)) / 2)
    text = sweep.crossover(torch, svm)
    assert text.startswith("torch overtakes sklearn svm at about ")
    assert f"{round(want, -1):,.0f}" in text and "(between 768 and 2,560; ahead by 2.00 pp at 54,000)" in text
    # torch - logreg: -0.02, +0.04: a third of the way from 256 to 768 on a log scale, 256 x 3^(1/3)
    assert sweep.crossover(torch, logreg) == ("torch overtakes sklearn logreg at about 370 examples "
                                              "(between 256 and 768; ahead by 8.00 pp at 54,000)")
    behind = [rec("torch", n, 0.5) for n in SIZES] + [rec("sklearn", n, 0.6, mode="svm") for n in SIZES]
    t, s = sweep.curves(behind)[("mnist_cnn", "mnist")]
    assert sweep.crossover(t, s) == ("sklearn svm stays ahead of (or level with) torch at every size up to 54,000 "
                                     "(10.00 pp at 54,000)")
    assert sweep.crossover(s, t) == "sklearn svm is ahead of torch at every size from 256 (10.00 pp at 54,000)"


def test_a_network_that_falls_behind_again_has_no_crossover():
    recs = [rec("torch", n, a) for n, a in zip(SIZES, [0.5, 0.9, 0.9, 0.9, 0.5])]
    recs += [rec("sklearn", n, 0.8, mode="svm") for n in SIZES]
    t, s = sweep.curves(recs)[("mnist_cnn", "mnist")]
    assert sweep.crossover(t, s) == ("torch and sklearn svm trade places; sklearn svm is ahead at the largest size "
                                     "(30.00 pp at 54,000)")


def test_markdown_section_tables_and_sentences():
    md = markdown_report(sweep_records())
    section = md[md.index("## Training-set size"):]
    assert "| framework | device | 256 | 768 | 2,560 | 7,680 | 54,000 |" in section
    assert "| sklearn svm | cpu | 85.00 | 91.00 | 94.00 | 96.00 | 97.00 |" in section
    assert "| torch | cpu | 80.00 [" in section  # repeats: the interval follows the median
    assert "- torch overtakes sklearn svm at about" in section
    assert "Training time" in section and "| sklearn svm | cpu | 2.56 | 7.68 | 25.60 | 76.80 | 540 |" in section
    assert "## Training-set size" not in markdown_report([rec("torch", None, 0.9)])  # no sweep, no section


def test_rows_are_labelled_by_size_in_numeric_order_and_baselines_by_name():
    labels = task_labels(sweep_records())
    assert set(labels) == {f"mnist_cnn (n={n:,})" if n else "mnist_cnn (n=all)" for n in SIZES}
    assert order_tasks(set(labels)) == ["mnist_cnn (n=256)", "mnist_cnn (n=768)", "mnist_cnn (n=2,560)",
                                        "mnist_cnn (n=7,680)", "mnist_cnn (n=all)"]
    md = markdown_report(sweep_records())
    assert "sklearn svm" in md.split("## Training-set size")[0]  # the main table names the baseline


def test_the_sweep_plot_is_in_the_html_with_the_crossovers_as_alt_text():
    plots = sweep_plots.render(sweep_records())
    assert [p.name for p in plots] == ["sweep-mnist_cnn-mnist"]
    assert plots[0].png.startswith(b"\x89PNG") and plots[0].width > 500
    assert "torch overtakes sklearn svm at about" in plots[0].alt
    page = html_report(sweep_records())
    assert 'id="plot-sweep-mnist_cnn-mnist"' in page and "<h2>Training-set size</h2>" in page


def test_compare_keeps_sizes_apart_and_names_them():
    from bench.records import compare

    base = sweep_records()
    slower = [rec("sklearn", 256, 0.85, mode="svm", time=5.0)]  # 2.56 s before: about 2x slower at n=256 only
    rows = compare.compare(base, [r for r in base if not (r.mode == "svm" and r.train_size == 256)] + slower,
                           compare.DEFAULT_THRESHOLDS)
    marked = {(compare.shown(r.cell)[0], compare.shown(r.cell)[1], r.metric): r.mark for r in rows}
    assert marked[("mnist_cnn n=256", "sklearn svm", "time")] == "worse"
    assert marked[("mnist_cnn n=768", "sklearn svm", "time")] == "unchanged"
    assert "| mnist_cnn n=256 | sklearn svm | cpu | time |" in compare.markdown(rows)


def test_curves_never_mix_training_budgets():
    longer = [dataclasses.replace(r, epochs=10, test_accuracy=r.test_accuracy + 0.01, run_id="b")
              for r in sweep_records() if r.framework == "torch"]
    cs = sweep.curves(sweep_records() + longer)[("mnist_cnn", "mnist")]
    assert [c.label for c in cs] == ["torch (10 epochs)", "torch (2 epochs)", "sklearn logreg", "sklearn svm"]
    assert cs[0].points[0].accuracy == pytest.approx(0.81) and cs[1].points[0].accuracy == pytest.approx(0.80)
