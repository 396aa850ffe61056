"""Photo pipeline on images the tests make: layout, bad files, limits, cache, safe extraction, download."""
import hashlib
import io
import stat
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import data
from bench.data import images
from bench.data import photos as imagefolder
from bench.data.archive import safe_extract
from bench.data.batches import Split
from bench.errors import DataError
from bench.harness.evaluate import metrics
from bench.spec import DATASETS, TASKS, LossType, PhotoFolder

TASK = TASKS["cats_vs_dogs"]
INPUT = TASK.input
DS = DATASETS["cats_vs_dogs"]


def binary_metrics(z, y):
    return metrics(LossType.SIGMOID_BINARY_CROSS_ENTROPY, np.asarray(z), np.asarray(y))


def jpeg(color, size=(300, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def make_folder(root: Path, n: int = 3, split_names=("train", "val")) -> Path:
    base = root / "cats_vs_dogs"
    for split in split_names:
        for cls, color in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
            d = base / split / cls
            d.mkdir(parents=True)
            for i in range(1, n + 1):
                (d / f"{cls}.{i}.jpg").write_bytes(jpeg(color))
    return base


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BENCH_OFFLINE", raising=False)


def test_load_photo_resizes_the_shorter_side_and_centre_crops(tmp_path):
    # Left third red, right two thirds blue, 600x300: after resize to 512x256 and a centre crop
    # of 224 starting at x=144, the red band (x < 170 after resize) shows only at the left edge.
    im = Image.new("RGB", (600, 300), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 200, 300))
    im.save(tmp_path / "a.png")
    x = images.load_photo(tmp_path / "a.png", INPUT)
    assert x.shape == (224, 224, 3) and x.dtype == np.uint8
    assert x[112, 5, 0] > 200 and x[112, 100, 2] > 200 and x[112, 100, 0] < 30


def test_normalize_uses_the_pretrained_weights_constants():
    x = np.array([[[[0, 127, 255]]]], np.uint8)
    got = INPUT.normalize(x)
    assert got.dtype == np.float32
    assert np.allclose(got[0, 0, 0], [(0 - 127) / 128, 0.0, (255 - 127) / 128], atol=1e-6)


def test_folder_is_found_balanced_limited_and_cached(tmp_path):
    make_folder(tmp_path, n=20)
    prof = TASK.profiles["smoke"]
    td = data.load(TASK, "cats_vs_dogs", prof, tmp_path)
    train = imagefolder.load_split(INPUT, DS, tmp_path / "cats_vs_dogs", "train", prof.train_limit)
    assert train.classes == ["cat", "dog"] and len(td.train) == 40 and len(td.test) == 40 and td.eval_split == "val"
    assert list(td.train.y[:4]) == [0, 1, 0, 1]  # round-robin: every prefix is balanced
    assert train.files[:3] == ["train/cat/cat.1.jpg", "train/dog/dog.1.jpg", "train/cat/cat.2.jpg"]
    assert td.train.x[0, 100, 100, 0] > 150 and td.train.x[1, 100, 100, 2] > 150  # cat red, dog blue
    limited = imagefolder.load_split(INPUT, DS, tmp_path / "cats_vs_dogs", "train", 3)
    assert list(limited.y) == [0, 1, 0]
    cached = list((tmp_path / "cache" / "images").rglob("*.npz"))
    assert len(cached) == 3  # train, val, train-limited
    again = data.load(TASK, "cats_vs_dogs", prof, tmp_path)
    assert np.array_equal(again.train.x, td.train.x) and again.fingerprint == td.fingerprint


def test_natural_order_and_validation_folder_name_inside_an_archive_root(tmp_path):
    base = tmp_path / "cats_vs_dogs" / "cats_and_dogs_filtered"
    for split in ("train", "validation"):
        for cls in ("cats", "dogs"):
            d = base / split / cls
            d.mkdir(parents=True)
            for i in (10, 2, 1):
                (d / f"{cls}.{i}.jpg").write_bytes(jpeg((i * 20, 0, 0)))
    assert imagefolder.find_root(DS, tmp_path) == base
    paths, labels, classes = imagefolder.list_split(DS, base, "train", None)
    assert classes == ["cats", "dogs"] and [p.name for p in paths[::2]] == ["cats.1.jpg", "cats.2.jpg", "cats.10.jpg"]


def test_corrupt_and_non_image_files_are_named_and_skipped(tmp_path):
    base = make_folder(tmp_path, n=2)
    (base / "train" / "cat" / "cat.3.jpg").write_bytes(jpeg((1, 2, 3))[:200])  # truncated JPEG
    (base / "train" / "dog" / "notes.txt").write_text("not a photo")
    train = imagefolder.load_split(INPUT, DS, base, "train", None)
    assert len(train) == 4
    assert sorted(Path(s.split(":")[0]).name for s in train.skipped) == ["cat.3.jpg", "notes.txt"]
    assert all("not a readable image" in s for s in train.skipped)


def test_empty_single_and_unreadable_classes_are_errors(tmp_path):
    base = make_folder(tmp_path, n=1)
    for f in (base / "train" / "dog").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="empty class folder"):
        imagefolder.load_split(INPUT, DS, base, "train", None)
    (base / "train" / "dog").rmdir()
    with pytest.raises(DataError, match="1 class folder"):
        imagefolder.load_split(INPUT, DS, base, "train", None)
    (base / "train" / "dog").mkdir()
    (base / "train" / "dog" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match="no readable photo"):
        imagefolder.load_split(INPUT, DS, base, "train", None)


def test_missing_folder_offline_names_the_place_and_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        imagefolder.ensure(DS, tmp_path)
    assert str(tmp_path / "cats_vs_dogs") in str(err.value) and "train/<class>/*.jpg" in str(err.value)


def test_flip_and_order_are_shared_and_seeded(tmp_path):
    make_folder(tmp_path, n=40)
    train = imagefolder.load_split(INPUT, DS, tmp_path / "cats_vs_dogs", "train", None)
    train.x[:, :, :112] = 0  # left half black: a mirrored image has its black half on the right
    split = Split(train.x, train.y)
    a = list(data.train_batches(TASK, split, seed=3, epoch=0))
    b = list(data.train_batches(TASK, split, seed=3, epoch=0))
    c = list(data.train_batches(TASK, split, seed=3, epoch=1))
    assert len(a) == 80 // TASK.batch_size and all(np.array_equal(p[0], q[0]) for p, q in zip(a, b))
    assert not np.array_equal(a[0][1], c[0][1]) or not np.array_equal(a[0][0], c[0][0])
    left_dark = np.array([x[100, 50].mean() < x[100, 170].mean() for x in a[0][0]])
    assert 0 < left_dark.sum() < len(left_dark)  # some mirrored, some not
    assert train.x[:, 100, 50].max() == 0  # the cached photos themselves are never flipped


def test_binary_metrics_match_the_definition():
    z, y = np.array([2.0, -1.0, 0.5, -3.0]), np.array([1, 0, 0, 1])
    loss, acc = binary_metrics(z, y)
    p = 1 / (1 + np.exp(-z))
    assert loss == pytest.approx(float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))), rel=1e-12)
    assert acc == 0.5
    assert binary_metrics(np.array([1000.0, -1000.0]), np.array([1, 0]))[0] == pytest.approx(0.0)  # no overflow


# ---------------------------------------------------------------- archives


def _zip(entries) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            if mode:
                info.external_attr = mode << 16
            z.writestr(info, data)
    return buf.getvalue()


@pytest.mark.parametrize("entries,match", [
    ([("/etc/evil", b"x", 0)], "absolute path"),
    ([("a/../../evil", b"x", 0)], "outside the target"),
    ([("link", b"/etc/passwd", stat.S_IFLNK | 0o777)], "symbolic link"),
    ([("big", b"\0" * 5000, 0)], "size limit|uncompressed"),
])
def test_zip_extraction_refuses_escapes_links_and_bombs(tmp_path, entries, match):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip(entries))
    with pytest.raises(DataError, match=match):
        safe_extract(archive, tmp_path / "out", max_bytes=1000)
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil").exists()
    assert not list(tmp_path.glob(".out.*"))  # the temporary folder is gone too


@pytest.mark.parametrize("kind", ["sym", "hard"])
def test_tar_links_are_refused(tmp_path, kind):
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as t:
        info = tarfile.TarInfo("x")
        info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
        info.linkname = "../../etc/passwd"
        t.addfile(info)
    with pytest.raises(DataError, match="is a link"):
        safe_extract(archive, tmp_path / "out", max_bytes=10**6)


def test_archive_downloads_verifies_extracts_and_loads(tmp_path, server):
    src = make_folder(tmp_path / "src", n=2)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for f in sorted(src.rglob("*.jpg")):
            z.write(f, "cats_and_dogs_filtered/" + str(f.relative_to(src)).replace("/val/", "/validation/")
                    .replace("val/", "validation/"))
    body = buf.getvalue()
    srv = server({"/good.zip": body, "/short.zip": body[:1000]})

    def spec(url, sha):
        return PhotoFolder(name="cats_vs_dogs", splits=DS.splits, num_classes=2, archive_urls=(url,),
                                  archive_name="c.zip", archive_size=len(body), archive_sha256=sha,
                                  max_extract_bytes=10**7, attribution="test")

    root = tmp_path / "data"
    with pytest.raises(DataError, match="does not match"):  # a wrong pinned hash: nothing kept
        imagefolder.ensure(spec(srv.url + "/good.zip", "0" * 64), root)
    assert not (root / "cats_vs_dogs" / "c.zip").exists()
    with pytest.raises(DataError, match="404"):
        imagefolder.ensure(spec(srv.url + "/nope.zip", None), root)
    base = imagefolder.ensure(spec(srv.url + "/good.zip", hashlib.sha256(body).hexdigest()), root)
    assert base == root / "cats_vs_dogs" / "cats_and_dogs_filtered"
    train = imagefolder.load_split(INPUT, DS, base, "train", None)
    assert len(train) == 4 and train.classes == ["cat", "dog"]
    # Not pinned upstream: the first download's hash is kept, a later different file is refused.
    root2 = tmp_path / "data2"
    imagefolder.ensure(spec(srv.url + "/good.zip", None), root2)
    pin = root2 / "cats_vs_dogs" / "c.zip.sha256"
    assert pin.read_text().strip() == hashlib.sha256(body).hexdigest()
