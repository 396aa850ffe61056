"""`bench run --train-size`: bad sizes refused before any cell; a real sweep of the three frameworks and the
classical baselines on the same subsets; the photo baselines (HOG, frozen pretrained features)."""
import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.spec.sweep import passes
from tests.cli.test_cli import ALL_FW, assert_bad_run, bench
from tests.realdata import dev_photos, skimage_photo_folder

BAD_SWEEP_ARGS = [
    (["--train-size", "0"], "--train-size 0: a training-set size must be positive"),
    (["--train-size", "-256"], "must be positive"),
    (["--train-size", "5"], "--train-size 5 is fewer examples than the 10 classes of mnist_mlp"),
    (["--train-size", "200"], "--train-size 200 is not a whole number of batches of 128"),
    (["--train-size", "1664"], "--train-size 1664 is larger than the 1536 training examples of mnist_mlp"),
    (["--task", "mnist_cnn", "--train-size", "1408"], "larger than the 1382 training examples of mnist_cnn"),
    (["--train-size", "1k"], "'1k' is not a whole number, all, or a preset (smoke, standard)"),
    (["--train-size", "128,128"], "give each size once"),
    (["--train-size", "standard"], "--train-size 4096 is larger than the 1536"),  # smoke data: 1 536 digits
    (["--baseline", "svm"], "--baseline needs --framework sklearn"),
    (["--framework", "sklearn", "--baseline", "hog_logreg"], "--baseline hog_logreg does not serve task mnist_mlp"),
    (["--framework", "sklearn", "--baseline", "lasso"], "unknown baseline 'lasso'"),
    (["--framework", "sklearn", "--task", "cats_vs_dogs", "--baseline", "svm"],
     "--baseline svm does not serve task cats_vs_dogs; its baselines: hog_logreg, frozen_logreg"),
]


@pytest.mark.parametrize("args,message", BAD_SWEEP_ARGS, ids=[" ".join(a) for a, _ in BAD_SWEEP_ARGS])
def test_bad_sweep_input_is_one_clear_line_exit_2_and_nothing_run(args, message, capsys, tmp_path):
    assert_bad_run(args, message, capsys, tmp_path)


def test_baselines_are_refused_where_they_have_no_meaning(capsys, tmp_path):
    assert main(["verify", "--framework", "torch,sklearn", "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err.strip()
    assert "the classical baselines have no logits to verify" in err and len(err.splitlines()) == 1


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.skipif(not ALL_FW, reason="needs tf, torch and jax installed")
def test_a_sweep_trains_every_framework_and_baseline_on_the_same_subsets(tmp_path):
    out = tmp_path / "sweep"
    p = bench("run", "--task", "mnist_mlp", "--framework", "all,sklearn", "--train-size", "128,all",
              "--out", str(out))
    assert p.returncode == 0, p.stderr
    recs = _records(out)
    assert {(r["framework"], r["mode"]) for r in recs} >= {("tf", "eager"), ("torch", "eager"), ("jax", "compiled"),
                                                            ("sklearn", "logreg"), ("sklearn", "svm"),
                                                            ("sklearn", "forest")}
    assert all(r["status"] == "ok" for r in recs), [(r["framework"], r["mode"], r["error"]) for r in recs]
    by_size: dict = {}
    for r in recs:
        by_size.setdefault(r["train_size"], []).append(r)
    assert set(by_size) == {128, None} and all(len(v) == 6 for v in by_size.values())
    for size, group in by_size.items():
        # one subset for all: the same bytes (train subset, whole test split) in every framework and baseline
        assert len({r["data_fingerprint"] for r in group}) == 1, size
        assert {r["n_train"] for r in group} == {size or 1536}
        for r in group:
            dl = r["framework"] != "sklearn"
            assert r["epochs"] == (2 if dl else 0) and r["n_test"] == 1000
            assert r["train_passes"] == (passes(1536, size, 128) if dl and size else None)
    assert by_size[128][0]["data_fingerprint"] != by_size[None][0]["data_fingerprint"]
    # 12 passes of the 128 digits per epoch: the 12 steps of the whole split, so as many timed step windows
    # (the probe after training: 2 warm-up steps, then 2 windows of 5 in one epoch's steps)
    windows = {(r["framework"], r["train_size"]): r["step_windows"] for r in recs if r["framework"] != "sklearn"}
    assert all(windows[(fw, 128)] == windows[(fw, None)] == 2 for fw in ("tf", "torch", "jax")), windows
    md = (out / "report.md").read_text()
    section = md[md.index("## Training-set size"):]
    assert "| framework | device | 128 | 1,536 |" in section and "| sklearn svm | cpu |" in section
    assert section.count("- ") >= 9  # 3 networks x 3 baselines: a crossover sentence each
    assert 'id="plot-sweep-mnist_mlp-mnist"' in (out / "report.html").read_text()
    assert "mnist_mlp n=128/sklearn svm/cpu: ok" in p.stderr  # the cell's line names its size and baseline


@pytest.fixture
def photo_root(tmp_path) -> Path:
    found = dev_photos()
    if found is not None:
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "cats_vs_dogs").symlink_to(found)
        return tmp_path / "data"
    skimage_photo_folder(tmp_path / "data" / "cats_vs_dogs")
    return tmp_path / "data"


@pytest.mark.slow
def test_photo_baselines_hog_and_frozen_pretrained_features(tmp_path, photo_root):
    out, cache = tmp_path / "photos", tmp_path / "cache"
    args = ("run", "--task", "cats_vs_dogs", "--framework", "sklearn", "--train-size", "32,all",
            "--data-root", str(photo_root), "--out", str(out))
    p = bench(*args, env={"BENCH_CACHE": str(cache)})
    assert p.returncode == 0, p.stderr
    recs = _records(out)
    assert sorted((r["mode"], r["train_size"] or 0) for r in recs) == [("frozen_logreg", 0), ("frozen_logreg", 32),
                                                                       ("hog_logreg", 0), ("hog_logreg", 32)]
    assert all(r["status"] == "ok" and 0.0 <= r["test_accuracy"] <= 1.0 for r in recs), recs
    frozen = [r for r in recs if r["mode"] == "frozen_logreg"]
    assert all("computed by torch" in r["settings"]["features"] and "not in the train time" in r["settings"]["features"]
               for r in frozen)
    assert all("HOG" in r["settings"]["features"] for r in recs if r["mode"] == "hog_logreg")
    stored = list((cache / "features").glob("cats_vs_dogs-torch-*.npz"))
    assert len(stored) == 1  # computed once, by one framework, for both sizes
    # a logistic regression on 1 280 pooled ImageNet features per photo: 1 281 numbers
    assert {r["param_count"] for r in frozen} == {1281}
    # a second run reads the stored features: same accuracy, bit for bit
    again = bench(*args[:-1], str(tmp_path / "again"), env={"BENCH_CACHE": str(cache)})
    assert again.returncode == 0, again.stderr
    twice = {(r["mode"], r["train_size"]): r["test_accuracy"] for r in _records(tmp_path / "again")}
    assert all(twice[(r["mode"], r["train_size"])] == r["test_accuracy"] for r in recs)
