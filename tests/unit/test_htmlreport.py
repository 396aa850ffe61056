"""Plots and the HTML report: one picture per measured metric, every image embedded, no network, edge cases."""
import base64
import dataclasses
import io
import re
import statistics
import subprocess
import sys

import pytest
from PIL import Image

from bench import records
from bench.report import html as htmlreport
from bench.report import plots
from bench.report import tables as report
from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "data" / "smoke_3fw_3tasks_repeats2.jsonl"
PLOTS = ["accuracy", "train-time", "steady-epoch", "memory", "mfu", "latency", "curves-mnist_mlp", "curves-mnist_cnn",
         "curves-cats_vs_dogs"]


@pytest.fixture(scope="module")
def real() -> list[records.Record]:
    recs, problems = records.read_file(FIXTURE)
    assert len(recs) == 18 and not problems
    return recs


def colours_in(png: bytes) -> set[tuple[int, int, int]]:
    img = Image.open(io.BytesIO(png)).convert("RGB")
    return {c for _, c in img.getcolors(img.width * img.height)}


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def test_real_run_gives_every_plot_with_its_framework_colours(real):
    out = plots.render(real)
    assert [p.name for p in out] == PLOTS
    for p in out:
        img = Image.open(io.BytesIO(p.png))
        assert img.format == "PNG" and img.size == (p.width, p.height)
        found = colours_in(p.png)
        for fw in ("tf", "torch", "jax"):  # the same colour per framework in every plot (bars, lines, legends)
            assert rgb(plots.COLOURS[fw]) in found, (p.name, fw)
    acc = out[0]
    for r in real:  # alt text states each cell's median accuracy
        median = statistics.median(x.test_accuracy for x in real if (x.task, x.framework) == (r.task, r.framework))
        assert f"{r.task} {r.framework} {100 * median:.1f}" in acc.alt
    assert "whiskers: 95 % CI" in out[1].title and out[1].alt.count("(95 % CI ") == 9
    spreads = {k: c["train_time_s_spread"] for k, c in report.aggregate(real).items() if c["train_time_s_spread"]}
    for lo, hi, _ in spreads.values():  # the table's interval, even where it reaches below 0 (drawn from 0)
        assert f"(95 % CI {lo:.3g}–{hi:.3g})" in out[1].alt
    # The CNN has a validation split: its curves have loss and accuracy panels; the MLP only train loss.
    curves = {p.name: p for p in out}
    assert "val_accuracy" in curves["curves-mnist_cnn"].alt and "val_" not in curves["curves-mnist_mlp"].alt
    assert "train_loss" in curves["curves-mnist_mlp"].alt
    for r in real:  # the median batch-1 latency of each cell, in ms
        ms = 1e3 * statistics.median(x.latency_b1_s for x in real if (x.task, x.framework) == (r.task, r.framework))
        assert f"{r.task} {r.framework} {f'{ms:.2g}' if ms < 100 else f'{ms:.0f}'}" in curves["latency"].alt


def rec(**kw) -> records.Record:
    base = dict(task="mnist_mlp", framework="torch", device="cpu", profile="smoke", dataset="mnist", seed=0,
                status="ok", spec_hash="h", test_accuracy=0.9, train_time_s=10.0, steady_epoch_s=1.0,
                peak_host_rss_bytes=300 * 2**20)
    return records.Record(**{**base, **kw})


def test_one_framework_without_repeats_or_history_and_a_failed_cell():
    recs = [rec(), rec(task="mnist_cnn", status="failed", error="boom", test_accuracy=None, train_time_s=None,
                       steady_epoch_s=None, peak_host_rss_bytes=None)]
    out = {p.name: p for p in plots.render(recs)}
    assert set(out) == {"accuracy", "train-time", "steady-epoch", "memory"}  # no history: no curves
    assert "whiskers" not in out["train-time"].title and "CI" not in out["train-time"].alt
    assert "mnist_cnn torch: failed" in out["accuracy"].alt and "mnist_mlp torch 90.0" in out["accuracy"].alt
    assert rgb(plots.COLOURS["torch"]) in colours_in(out["accuracy"].png)
    assert rgb(plots.COLOURS["tf"]) not in colours_in(out["accuracy"].png)


def test_nothing_ran_gives_no_plots_and_says_so():
    recs = [rec(status="skipped", error="no CUDA GPU", device="gpu", test_accuracy=None, train_time_s=None,
                steady_epoch_s=None, peak_host_rss_bytes=None)]
    assert plots.render(recs) == []
    page = htmlreport.html_report(recs)
    assert "No plots" in page and "<img" not in page and "no CUDA GPU" in page


def test_gpu_and_cpu_give_speedup_and_device_memory_and_mfu_when_recorded():
    recs = [rec(train_time_s=12.0), rec(device="gpu", train_time_s=3.0, peak_device_bytes=512 * 2**20),
            rec(framework="jax", train_time_s=8.0), rec(framework="jax", device="gpu", train_time_s=4.0,
                                                        peak_device_bytes=256 * 2**20)]
    names = [p.name for p in plots.render(recs)]
    assert "speedup" in names and "mfu" not in names
    for r, mfu in zip(recs, (0.02, 0.3, 0.01, 0.2)):
        r.peak_flops, r.achieved_flops = 1e12, mfu * 1e12  # one peak: the headline MFU is `mfu`
    out = {p.name: p for p in plots.render(recs)}
    # a GPU row names its mode; its speedup is over the framework's CPU-default row
    assert "mnist_mlp torch (compiled, fp32) 4.0×" in out["speedup"].alt
    assert "mnist_mlp jax (compiled, fp32) 2.0×" in out["speedup"].alt
    assert "peak device memory (MiB): " in out["memory"].alt
    assert "mnist_mlp torch (compiled, fp32) gpu 512" in out["memory"].alt
    assert "mnist_mlp torch (compiled, fp32) gpu 30" in out["mfu"].alt


def test_mfu_bars_keep_a_framework_run_in_two_modes_apart():
    recs = [rec(mode="eager", train_time_s=12.0), rec(mode="compiled", train_time_s=9.0)]
    for r, mfu in zip(recs, (0.05, 0.25)):
        r.peak_flops, r.achieved_flops = 1e12, mfu * 1e12
    out = {p.name: p for p in plots.render(recs)}
    assert "mfu" in out, [p.name for p in plots.render(recs)]
    assert "torch (eager" in out["mfu"].alt and "torch (compiled" in out["mfu"].alt
    assert re.search(r"torch \(eager[^;]* 5\b", out["mfu"].alt)
    assert re.search(r"torch \(compiled[^;]* 25\b", out["mfu"].alt)


def test_curves_survive_odd_history_entries():
    hist = [{"epoch": 1, "train_loss": 2.0, "val_accuracy": "x"}, "not a dict", {"epoch": True, "train_loss": None},
            {"epoch": 3, "train_loss": float("nan")}, {"train_loss": 1.0}]
    (curves,) = [p for p in plots.render([rec(history=hist)]) if p.name.startswith("curves")]
    assert "train_loss at the last epoch: torch 1" in curves.alt and "val_" not in curves.alt


def test_html_embeds_every_plot_has_the_tables_and_reaches_for_no_network(real):
    bad = dataclasses.replace(real[0], status="failed", seed=99, error="<script>alert(1)</script> | pipe")
    page = htmlreport.html_report([*real, bad], ["line 3: damaged"])
    imgs = re.findall(r"<img [^>]*>", page)
    assert re.findall(r'<figure id="plot-([^"]+)">', page) == PLOTS
    assert len(imgs) == len(PLOTS)
    for tag in imgs:
        src = re.search(r'src="data:image/png;base64,([^"]+)"', tag)
        assert src and Image.open(io.BytesIO(base64.b64decode(src.group(1)))).format == "PNG"
        assert re.search(r'alt="(Bar|Line) chart, [^"]{20,}"', tag)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|@import|url\(|<script|<link""", page, re.I)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; | pipe" in page  # record text is escaped, not run
    # the same tables as the Markdown report: the comparison table's 9 rows, the failed cell, the problem
    first = page.split("<table>")[1].split("</table>")[0]
    assert first.count("<tr>") == 1 + 9 and "mnist_cnn" in first and 'class="num' in first
    for heading in ("Cells that did not run", "Problems with the records"):
        assert f"<h2>{heading}</h2>" in page
    assert "<li>line 3: damaged</li>" in page and "<em>train s</em>" in page
    assert page.index("<h2>Plots</h2>") < page.index("<h2>Cells that did not run</h2>")


def test_markdown_blocks_cover_the_report_subset():
    blocks = htmlreport.markdown_blocks("# T\n\n- a **b**\n- c\n\n| x | y |\n|---|---:|\n| 1 \\| 2 | 3 |\n\n"
                                        "para\ngraph `c`\n")
    assert [k for k, _ in blocks] == ["heading", "list", "table", "paragraph"]
    assert "<li>a <strong>b</strong></li>" in blocks[1][1]
    assert "<td>1 | 2</td><td class=\"num\">3</td>" in blocks[2][1]
    assert blocks[3][1] == "<p>para graph <code>c</code></p>"


def test_report_modules_import_no_plotting_or_table_library():
    code = ("import sys, bench.cli.run, bench.cli.report, bench.report.plots, bench.report.html, bench.report.export; "
            "print(sorted(m for m in ('matplotlib', 'pandas', 'pyarrow', 'scipy') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stderr  # imported lazily, inside functions
