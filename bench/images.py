"""Photos -> the network's pixels, once, in NumPy: decode, resize, centre crop, normalise, flip."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from bench.errors import DataError
from bench.vision import BACKBONES, TransferTaskSpec


class BadImage(ValueError):
    """A file that is not a decodable image."""


def load_photo(path: Path, task: TransferTaskSpec) -> np.ndarray:
    """uint8 (S, S, 3): RGB, shorter side resized to `resize_shorter` (bilinear), centre crop S.

    Pillow does all resampling, so every framework sees the same bytes; the result is cached
    by the loader and only normalised per batch.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.draft("RGB", (task.resize_shorter, task.resize_shorter))  # JPEG: decode at >= the target size
            im = im.convert("RGB")
            w, h = im.size
            scale = task.resize_shorter / min(w, h)
            size = (max(task.image_size, round(w * scale)), max(task.image_size, round(h * scale)))
            im = im.resize(size, Image.Resampling.BILINEAR)
            left, top = (size[0] - task.image_size) // 2, (size[1] - task.image_size) // 2
            im = im.crop((left, top, left + task.image_size, top + task.image_size))
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"{path}: not a readable image ({exc})") from None
    if arr.shape != task.input_shape:
        raise BadImage(f"{path}: decoded to shape {arr.shape}, expected {task.input_shape}")
    return arr


def normalize(x: np.ndarray, task: TransferTaskSpec) -> np.ndarray:
    """uint8 NHWC -> float32 (x / 255 - mean) / std with the backbone's per-channel constants."""
    bb = BACKBONES[task.backbone]
    mean = np.asarray(bb.mean, np.float32)
    inv_std = np.float32(1.0) / np.asarray(bb.std, np.float32)
    out = x.astype(np.float32)  # one new array, then in place: the same float32 operations, bit for bit,
    out *= np.float32(1.0 / 255.0)  # without four temporaries (2x faster on a batch of 4 photos)
    out -= mean
    out *= inv_std
    return out


def flip_mask(seed: int, epoch: int, n: int) -> np.ndarray:
    """Which training images (by index into the split) are mirrored in this epoch: shared by all frameworks."""
    return np.random.default_rng((seed, epoch, 0xF11B)).random(n) < 0.5


# Real photos that ship inside scikit-image (public domain / CC0), for checking the ImageNet
# weights without any download: (file, ImageNet class ids that count as a right answer).
SAMPLE_PHOTOS: dict[str, tuple[str, tuple[int, ...]]] = {
    "chelsea": ("data/chelsea.png", tuple(range(281, 286))),  # tabby/tiger/Persian/Siamese/Egyptian cat
    "coffee": ("data/coffee.png", (504, 967, 968)),  # coffee mug, espresso, cup
}


def sample_photo(name: str) -> Path:
    """Path of one of SAMPLE_PHOTOS inside the installed scikit-image (not imported)."""
    found = importlib.util.find_spec("skimage")
    if found is None or found.origin is None:
        raise DataError("the sample photos need scikit-image: pip install scikit-image")
    path = Path(found.origin).parent / SAMPLE_PHOTOS[name][0]
    if not path.is_file():
        raise DataError(f"{path} is missing from the installed scikit-image; reinstall it")
    return path
