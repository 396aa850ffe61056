"""scikit-learn estimators and scikit-image features, built from bench/spec/sweep.py's settings."""
from __future__ import annotations

from importlib import metadata
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from bench.spec.sweep import Baseline, Hog

ESTIMATORS: dict[str, Any] = {"logistic_regression": LogisticRegression, "svc": SVC,
                              "random_forest": RandomForestClassifier}


def versions() -> dict[str, str]:
    return {p: metadata.version(p) for p in ("scikit-learn", "scikit-image", "threadpoolctl")}


def estimator(base: Baseline, seed: int, threads: int | None) -> Any:
    """The spec's estimator; a forest grows its trees on the worker's threads (the others use BLAS/OpenMP's)."""
    params = dict(base.params)
    if base.seeded:
        params["random_state"] = seed
    if base.estimator == "random_forest":
        params["n_jobs"] = threads or 1
    return ESTIMATORS[base.estimator](**params)


def hog_features(photos: np.ndarray, spec: Hog) -> np.ndarray:
    """HOG of each uint8 RGB photo, in grey (luminance as skimage.color.rgb2gray): float32 (N, features)."""
    from skimage.color import rgb2gray
    from skimage.feature import hog

    cell, block = (spec.pixels_per_cell,) * 2, (spec.cells_per_block,) * 2
    return np.stack([hog(rgb2gray(p), orientations=spec.orientations, pixels_per_cell=cell, cells_per_block=block,
                         block_norm=spec.block_norm, feature_vector=True) for p in photos]).astype(np.float32)


def log_loss(model: Any, x: np.ndarray, y: np.ndarray) -> float | None:
    """Mean negative log-likelihood of the true labels, where the estimator gives probabilities (not SVC)."""
    if not hasattr(model, "predict_proba"):
        return None
    from sklearn.metrics import log_loss as nll

    return float(nll(y, model.predict_proba(x), labels=model.classes_))


def param_count(model: Any) -> int:
    """The numbers a fitted model stores to predict: weights and biases; support vectors and their
    coefficients; the nodes of every tree."""
    if hasattr(model, "estimators_"):
        return int(sum(t.tree_.node_count for t in model.estimators_))
    if hasattr(model, "support_vectors_"):
        return int(model.support_vectors_.size + model.dual_coef_.size + model.intercept_.size)
    return int(model.coef_.size + model.intercept_.size)


def describe(model: Any) -> str:
    """What ran, in scikit-learn's words: the estimator and its non-default settings; iterations where known."""
    text = repr(model)
    n_iter = getattr(model, "n_iter_", None)
    if n_iter is not None:
        text += f", {int(np.max(n_iter))} iterations"
    return text
