"""Real photos for tests that need a photo folder: the development cats and dogs when present, else an
ImageFolder cut from the real photographs that ship inside scikit-image (an installed dependency), so
the tests run on every machine, CI included, and never on synthetic pixels."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from PIL import Image

from tests.conftest import SHARED_DATA

# Colour photographs in skimage/data (public domain or CC0), split into two arbitrary classes:
# parity and pipeline tests need real image statistics, not a meaningful label.
SKIMAGE_PHOTOS = {"a": ("chelsea.png", "astronaut.png", "rocket.jpg", "hubble_deep_field.jpg"),
                  "b": ("coffee.png", "motorcycle_left.png", "motorcycle_right.png", "retina.jpg")}
SCALES = (0.55, 0.7, 0.85, 1.0)
ANCHORS = ((0.0, 0.0), (1.0, 0.0), (0.5, 0.5), (0.0, 1.0), (1.0, 1.0))


def dev_photos() -> Path | None:
    base = SHARED_DATA / "cats_vs_dogs_small"
    return base if (base / "train").is_dir() else None


def skimage_photo_folder(root: Path) -> Path:
    """`root/train/{a,b}` and `root/val/{a,b}`: square crops of each photo at several scales and places
    (20 per photo: 80 per class), every fifth one kept for validation."""
    found = importlib.util.find_spec("skimage")
    assert found is not None and found.origin is not None, "scikit-image is a dependency of bench"
    src = Path(found.origin).parent / "data"
    for cls, names in SKIMAGE_PHOTOS.items():
        for d in ("train", "val"):
            (root / d / cls).mkdir(parents=True, exist_ok=True)
        i = 0
        for name in names:
            with Image.open(src / name) as im:
                im = im.convert("RGB")
                w, h = im.size
                for scale in SCALES:
                    side = int(min(w, h) * scale)
                    for ax, ay in ANCHORS:
                        left, top = int((w - side) * ax), int((h - side) * ay)
                        crop = im.crop((left, top, left + side, top + side))
                        crop = crop.resize((256, 256), Image.Resampling.BILINEAR)
                        split = "val" if i % 5 == 4 else "train"
                        crop.save(root / split / cls / f"{cls}.{i}.jpg", "JPEG", quality=90)
                        i += 1
    return root


def photo_folder(tmp: Path) -> Path:
    """An ImageFolder of real photos (train/ and val/, two classes): the development copy, else skimage's."""
    return dev_photos() or skimage_photo_folder(tmp / "photos")
