"""Photos -> the network's pixels, once, in NumPy and Pillow: decode, resize, centre crop; sample photos."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from bench.errors import DataError
from bench.spec import PhotoInput


class BadImage(ValueError):
    """A file that is not a decodable image."""


def load_photo(path: Path, spec: PhotoInput) -> np.ndarray:
    """uint8 (S, S, 3): RGB, shorter side resized to `resize_shorter` (bilinear), centre crop S.

    Pillow does all resampling, so every framework sees the same bytes; the loader caches the result
    and normalises per batch.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.draft("RGB", (spec.resize_shorter, spec.resize_shorter))  # JPEG: decode at >= the target size
            im = im.convert("RGB")
            w, h = im.size
            scale = spec.resize_shorter / min(w, h)
            size = (max(spec.size, round(w * scale)), max(spec.size, round(h * scale)))
            im = im.resize(size, Image.Resampling.BILINEAR)
            left, top = (size[0] - spec.size) // 2, (size[1] - spec.size) // 2
            im = im.crop((left, top, left + spec.size, top + spec.size))
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"{path}: not a readable image ({exc})") from None
    if arr.shape != spec.shape:
        raise BadImage(f"{path}: decoded to shape {arr.shape}, expected {spec.shape}")
    return arr


# Real photos that ship inside scikit-image (public domain / CC0), for checking pretrained ImageNet
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


def sample_photos(spec: PhotoInput) -> np.ndarray:
    """The sample photos as the network receives them: decoded, cropped and normalised."""
    return spec.normalize(np.stack([load_photo(sample_photo(n), spec) for n in SAMPLE_PHOTOS]))
