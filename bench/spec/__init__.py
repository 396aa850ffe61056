"""The framework-neutral specification: tasks (model, data, loss, phases), layers, optimizers,
profiles, the measurement protocol, and what they imply (shapes, parameter counts, FLOPs, spec_hash).

Nothing here imports a framework; every other part reads its numbers from here."""
from bench.spec.data import DATASETS, Dataset, IdxDataset, PhotoFolder, PhotoInput, PixelInput
from bench.spec.layers import Conv2D, ConvBN, Dense, Dropout, Flatten, GlobalAvgPool, Layer, MaxPool2D, MBConv
from bench.spec.optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from bench.spec.protocol import PROFILES, Measurement, Profile
from bench.spec.shapes import param_count
from bench.spec.tasks import (
                              DEFAULT_TASKS,
                              DEVICES,
                              FRAMEWORKS,
                              TASKS,
                              AuxHead,
                              LossType,
                              Phase,
                              PretrainedSource,
                              TaskSpec,
                              resolve_epochs,
                              spec_hash,
)

__all__ = [
    "DATASETS", "DEFAULT_TASKS", "DEVICES", "FRAMEWORKS", "PROFILES", "SGD", "TASKS", "Adagrad", "Adam", "AdamW",
    "AuxHead", "Conv2D", "ConvBN", "Dataset", "Dense", "Dropout", "Flatten", "GlobalAvgPool", "IdxDataset", "Layer",
    "LossType", "MBConv", "MaxPool2D", "Measurement", "Optimizer", "Phase", "PhotoFolder", "PhotoInput",
    "PixelInput", "PretrainedSource", "Profile", "RMSprop", "TaskSpec", "param_count", "resolve_epochs", "spec_hash"
]
