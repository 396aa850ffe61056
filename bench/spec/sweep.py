"""Training-set-size sweeps, and the classical baselines (scikit-learn) they are measured against.

Kept apart from TaskSpec on purpose: the task's hash (what makes records comparable) does not change
when a baseline is added; a baseline's settings are written into its own records instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

BASELINE = "sklearn"  # the framework column of the classical baselines; each baseline is a record's `mode`

# --train-size presets. Sizes are whole batches (128 for MNIST); None is the whole training split.
# standard: one batch, then x4 apart from 2 batches to all of MNIST; smoke: what the 1 536 bundled digits allow.
TRAIN_SIZE_PRESETS: dict[str, tuple[int | None, ...]] = {
    "smoke": (128, 256, 512, 1024, None),
    "standard": (128, 256, 1024, 4096, 16384, None),
}


@dataclass(frozen=True)
class Hog:
    """Histogram of oriented gradients (scikit-image) of the grey photo as the network receives it
    (decoded, resized, centre-cropped). Cells of 16 px instead of skimage's 8: 6 084 features per
    224 px photo instead of 26 244, for a logistic regression on 2 000 photos."""

    orientations: int = 9
    pixels_per_cell: int = 16
    cells_per_block: int = 2
    block_norm: str = "L2-Hys"


@dataclass(frozen=True)
class Frozen:
    """The pretrained backbone's pooled features (the output of layer `after`), computed once by one
    framework with the task's ImageNet weights, stored, and named in the record: features, not learning."""

    after: str = "pool"
    framework: str = "torch"  # any one framework computes them; the others are not needed
    batch: int = 50


Features = str | Hog | Frozen  # "pixels": the scaled pixels, flattened


@dataclass(frozen=True)
class Baseline:
    """One classical baseline: a scikit-learn estimator with every keyword spelled out.

    The settings are scikit-learn's defaults, untuned, except where named in `why`.
    """

    name: str  # the record's mode; the row label is "sklearn <name>"
    estimator: str  # logistic_regression | svc | random_forest (impls/sklearn/baselines.py)
    params: dict[str, Any]
    features: Features = "pixels"
    max_train_size: int | None = None  # larger subsets are skipped cells, saying why
    why: str = ""
    seeded: bool = False  # takes random_state=seed

    def too_large(self, n: int) -> str | None:
        if self.max_train_size is not None and n > self.max_train_size:
            return (f"{self.name} is capped at {self.max_train_size:,} training examples in the spec "
                    f"(its fit and predict time grow about as n^2); the random forest covers larger sizes")
        return None


# lbfgs stops at 100 iterations by default, before it converges on MNIST pixels; 1 000 lets it converge.
_LOGREG = {"C": 1.0, "penalty": "l2", "solver": "lbfgs", "tol": 1e-4, "max_iter": 1000}

BASELINES: dict[str, tuple[Baseline, ...]] = {
    "mnist": (
        Baseline("logreg", "logistic_regression", _LOGREG, why="max_iter 1 000 instead of 100, so lbfgs converges"),
        Baseline("svm", "svc", {"C": 1.0, "kernel": "rbf", "gamma": "scale", "tol": 1e-3, "cache_size": 500},
                 max_train_size=25600, why="cache_size 500 MB instead of 200, for speed only"),
        Baseline("forest", "random_forest", {"n_estimators": 100, "criterion": "gini", "max_features": "sqrt",
                                             "min_samples_leaf": 1}, seeded=True),
    ),
    "photos": (
        Baseline("hog_logreg", "logistic_regression", _LOGREG, features=Hog(), why="as for MNIST"),
        Baseline("frozen_logreg", "logistic_regression", _LOGREG, features=Frozen(), why="as for MNIST"),
    ),
}

# Which baselines serve which task (by the kind of input they read).
TASK_BASELINES: dict[str, str] = {"mnist_mlp": "mnist", "mnist_cnn": "mnist", "cats_vs_dogs": "photos"}


def baselines(task: str) -> tuple[Baseline, ...]:
    return BASELINES[TASK_BASELINES[task]]


def baseline(task: str, name: str) -> Baseline:
    found = [b for b in baselines(task) if b.name == name]
    if not found:
        raise KeyError(name)
    return found[0]


def passes(pool: int, size: int, batch: int) -> int:
    """How many shuffled copies of a subset of `size` one epoch draws from: enough for the optimizer steps
    the whole training split of `pool` examples gets in an epoch — an equal compute budget, so a small
    subset is not under-trained. The epoch runs the shuffles one after another and stops at those steps
    (bench/data/batches.py), so each example is drawn `passes` or `passes - 1` times."""
    return max(1, math.ceil((pool // batch) / (size // batch)))
