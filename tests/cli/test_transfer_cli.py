"""cats_vs_dogs through the command line: the smoke profile on photos made here, and `bench verify`."""
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli.test_cli import ALL_FW, bench

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not ALL_FW, reason="needs tf, torch and jax installed")]


def _photo(rng: np.random.Generator, tint: np.ndarray) -> bytes:
    """A noisy, tinted photo of random size: decoding, resizing and cropping all have work to do."""
    h, w = rng.integers(180, 400, size=2)
    pixels = np.clip(rng.normal(0, 40, (h, w, 3)) + tint, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_photo_folder(root: Path, per_class: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    tints = {"cat": np.array([170, 110, 60]), "dog": np.array([60, 110, 170])}
    for split, n in per_class.items():
        for cls, tint in tints.items():
            d = root / "cats_vs_dogs" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                (d / f"{cls}.{i}.jpg").write_bytes(_photo(rng, tint))
    (root / "cats_vs_dogs" / "train" / "cat" / "cat.broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (root / "cats_vs_dogs" / "train" / "dog" / "notes.txt").write_text("not an image")
    return root


def test_smoke_profile_runs_in_every_framework_on_the_same_photos(tmp_path):
    # 2 x 24 training photos + 2 bad files: all inside the smoke limit of 64, so every file is read.
    root = make_photo_folder(tmp_path / "data", {"train": 24, "val": 30})
    out = tmp_path / "run"
    # --no-inference: batch-1 prediction of EfficientNet-Lite0 takes minutes on a 2-core CPU in JAX; saving and
    # reloading it is tested in process (tests/frameworks/test_inference.py).
    res = bench("run", "--task", "cats_vs_dogs", "--framework", "all", "--data-root", str(root), "--out", str(out),
                "--no-inference", env={"BENCH_CACHE": str(tmp_path / "cache"), "BENCH_OFFLINE": "1"})
    assert res.returncode == 0, res.stdout + res.stderr
    recs = {r["framework"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}
    assert set(recs) == {"tf", "torch", "jax"}
    for fw, r in recs.items():
        assert r["status"] == "ok", (fw, r["error"])
        assert r["task"] == "cats_vs_dogs" and r["profile"] == "smoke" and r["eval_split"] == "val"
        assert r["latency_b1_s"] is None and r["saved"] == {}  # skipped, as asked
        assert [p["name"] for p in r["phases"]] == ["feature_extraction", "fine_tuning"]
        # One epoch of 1 step per phase: its time holds the compile and no steady step fits, so throughput
        # and MFU are null, never the compiling epoch's (bench/harness/timing.py epoch_summary).
        assert all(p["time_s"] > 0 and p["samples_per_s"] is None and p["mfu"] is None for p in r["phases"])
        # Per-phase FLOPs (bench/harness/efficiency.py): fine-tuning does more work per photo than feature
        # extraction.
        assert r["mfu"] is None and r["phases"][0]["flops_per_sample"] < r["phases"][1]["flops_per_sample"]
        assert r["phases"][0]["trainable_params"] < r["phases"][1]["trainable_params"] < r["param_count"]
        assert r["test_accuracy"] * r["n_test"] == round(r["test_accuracy"] * r["n_test"])  # a share of 60 photos
        # 48 photos / 32 = 1 step per phase: the first step is timed, no steady window fits (None, not faked).
        assert all(p["first_step_s"] > 0 and p["step_windows"] == 0 and p["steady_step_s"] is None for p in r["phases"])
        # Validation after every epoch of both phases; time to accuracy agrees with it.
        accs = [h["val_accuracy"] for h in r["history"]]
        first = next((e for e, a in enumerate(accs, 1) if a >= r["tta_target"]), None)
        assert len(accs) == 2 and accs[-1] == r["test_accuracy"] and r["tta_reached_epoch"] == first
        assert (r["time_to_accuracy_s"] is None) == (first is None) and r["train_added_rss_bytes"] > 0
        # The broken files are skipped and named, and the cell still runs on the rest.
        skipped = " ".join(r["data_skipped"])
        assert "cat.broken.jpg" in skipped and "notes.txt" in skipped
    # Same weights, photos and steps, only the dropout masks differ: the three end close together
    # (measured: validation loss 0.7116-0.7140, accuracy 50 % in all three after one step per phase).
    losses = sorted(r["test_loss"] for r in recs.values())
    accs = sorted(r["test_accuracy"] for r in recs.values())
    assert losses[-1] - losses[0] < 0.02 and accs[-1] - accs[0] <= 0.1, (losses, accs)
    # Fairness: one weights file and one set of decoded pixels for all three.
    assert len({r["weights_digest"] for r in recs.values()}) == 1
    assert len({r["data_fingerprint"] for r in recs.values()}) == 1
    report = (out / "report.md").read_text()
    assert "Transfer-learning phases" in report and "cat.broken.jpg" in report and "too few steps" in report


def test_verify_compares_imagenet_logits_on_real_photos(tmp_path):
    res = bench("verify", "--task", "cats_vs_dogs", "--out", str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    for pair in ("tf vs torch", "tf vs jax", "torch vs jax"):
        assert pair in res.stdout
    assert "chelsea" in res.stdout
