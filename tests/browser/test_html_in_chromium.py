"""The HTML report of a real run, opened in headless Chromium: every plot loads, is drawn, and nothing errs."""
import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.browser.webdriver import CHROMEDRIVER, CHROMIUM, Browser
from tests.conftest import ROOT, missing

FIXTURE = ROOT / "tests" / "data" / "smoke_3fw_3tasks_repeats2.jsonl"
PLOTS = ["accuracy", "train-time", "steady-epoch", "memory", "mfu", "latency", "curves-mnist_mlp", "curves-mnist_cnn",
         "curves-cats_vs_dogs"]
COLOURS = {"tf": (0xE6, 0x9F, 0x00), "torch": (0x00, 0x72, 0xB2), "jax": (0x00, 0x9E, 0x73)}



@pytest.fixture(autouse=True)
def _needs_the_browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        missing(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")

IMAGES = """return Array.from(document.images).map(i => {
  const r = i.getBoundingClientRect();
  return {id: i.parentElement.id, complete: i.complete, natural: i.naturalWidth, alt: i.alt,
          x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height};
});"""


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path)
    yield b
    b.quit()  # ends the session, then chromedriver's own process group


def open_report(browser: Browser, records: Path, page: Path) -> None:
    """`bench report RECORDS --format html`, opened, the window as tall as the whole page (one screenshot)."""
    res = subprocess.run([sys.executable, "-m", "bench", "report", str(records), "--format", "html", "--output",
                          str(page)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0 and page.is_file(), res.stderr
    browser.open(page.as_uri())
    assert browser.run("return document.title") == "bench report"
    height = browser.run("return document.documentElement.scrollHeight")
    browser.resize(1400, height + 200)
    assert browser.run("return window.innerHeight") >= height


def test_report_of_a_real_run_shows_every_plot(browser, tmp_path):
    open_report(browser, FIXTURE, tmp_path / "report.html")
    images = browser.run(IMAGES)
    assert [i["id"] for i in images] == [f"plot-{name}" for name in PLOTS]
    shot = Image.open(io.BytesIO(browser.screenshot())).convert("RGB")
    shot.save(tmp_path / "screenshot.png")
    ratio = browser.run("return window.devicePixelRatio")
    for img in images:
        assert img["complete"] and img["natural"] > 300 and img["w"] > 300 and img["h"] > 200, img
        assert img["alt"].startswith(("Bar chart", "Line chart")), img
        box = tuple(round(v * ratio) for v in (img["x"], img["y"], img["x"] + img["w"], img["y"] + img["h"]))
        assert box[2] <= shot.width and box[3] <= shot.height, (img, shot.size)
        crop = shot.crop(box)
        hist = crop.convert("L").histogram()  # grey-level counts: their spread is the crop's contrast
        mean = sum(v * n for v, n in enumerate(hist)) / sum(hist)
        sd = (sum(n * (v - mean) ** 2 for v, n in enumerate(hist)) / sum(hist)) ** 0.5
        colours = crop.getcolors(crop.width * crop.height)
        # drawn, not blank: many colours, real contrast, and each framework's colour on screen
        assert len(colours) > 50 and sd > 20, img["id"]
        present = {c for _, c in colours}
        for fw, rgb in COLOURS.items():
            assert rgb in present, (img["id"], fw)
    # the tables render too: the comparison table has the 6 cells of the run
    assert browser.run("return document.querySelector('table').rows.length") == 1 + 9
    severe = [e for e in browser.console() if e.get("level") == "SEVERE"]
    assert severe == [], severe


SWEEP = ROOT / "tests" / "data" / "sweep_standard_mnist.jsonl"


def test_sweep_report_draws_the_learning_curves(browser, tmp_path):
    open_report(browser, SWEEP, tmp_path / "sweep.html")
    images = {i["id"]: i for i in browser.run(IMAGES)}
    shot = Image.open(io.BytesIO(browser.screenshot())).convert("RGB")
    ratio = browser.run("return window.devicePixelRatio")
    for task in ("mnist_mlp", "mnist_cnn"):
        img = images[f"plot-sweep-{task}-mnist"]
        assert img["complete"] and img["natural"] > 800 and img["h"] > 300, img
        assert img["alt"].startswith(f"Learning curves of {task}: ") and " pp at " in img["alt"], img["alt"]
        box = tuple(round(v * ratio) for v in (img["x"], img["y"], img["x"] + img["w"], img["y"] + img["h"]))
        present = {c for _, c in shot.crop(box).getcolors(10**6)}
        # every framework's line in its colour, and the baselines' black lines
        assert all(rgb in present for rgb in COLOURS.values()) and (0, 0, 0) in present, img["id"]
    headings = browser.run("return Array.from(document.querySelectorAll('h2, h3')).map(h => h.textContent)")
    assert "Training-set size" in headings and "mnist_cnn (mnist)" in headings
    severe = [e for e in browser.console() if e.get("level") == "SEVERE"]
    assert severe == [], severe
