"""bench/spec/flops.py against an independent count: torch's own FLOP counter over real training steps."""
import numpy as np
import pytest

from bench import weights
from bench.spec import TASKS
from bench.spec.flops import layer_flops, task_flops
from bench.spec.shapes import is_trainable
from tests.conftest import needs
from tests.frameworks.helpers import batches, built

CATS_VS_DOGS = TASKS["cats_vs_dogs"]

pytestmark = [pytest.mark.torch, needs("torch")]


def _counted(step) -> int:
    """torch's count of a step, less the backward of depthwise convs: torch 2.13's counter ignores
    `groups` in convolution_backward (pytorch/pytorch#183405) and overcounts those ~C/2-fold."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    depthwise_backward = sum(n for module, ops in counter.get_flop_counts().items()
                             if module.endswith(".depthwise.conv")
                             for op, n in ops.items() if str(op) == "aten.convolution_backward")
    return counter.get_total_flops() - depthwise_backward


# Autograd skips the input gradient of the lowest trainable layer (nothing below needs it), which
# the "train = 3 x forward" rule counts: torch's total is ours minus that one layer's forward FLOPs.
@pytest.mark.parametrize("task,first", [("mnist_mlp", 2 * 784 * 512), ("mnist_cnn", 2 * 26 * 26 * 32 * 9)])
def test_mnist_train_step_flops_match_torch_counter(task, first):
    spec = TASKS[task]
    a = built("torch", spec, weights.init_weights(spec, 0))
    (x, y), = batches(spec, 1)
    ours = task_flops(spec)
    assert _counted(lambda: a.predict(x)) == len(x) * ours["forward"]
    assert _counted(lambda: a.train_step(x, y)) == len(x) * (ours["train"] - first)


def test_transfer_phase_flops_match_torch_counter():
    a = built("torch", CATS_VS_DOGS, weights.init_weights(CATS_VS_DOGS, 0), phase=None)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 224, 224, 3)).astype(np.float32)
    y = np.array([0, 1], np.int32)
    ours, layers = task_flops(CATS_VS_DOGS), layer_flops(CATS_VS_DOGS)
    f = dict(layers)
    # What _counted leaves out: fine-tuning trains blocks 13-15, so their depthwise convs have an
    # input and a weight gradient (2 F each); feature extraction runs no backward through the backbone.
    depthwise_backward = {"feature_extraction": 0,
                          "fine_tuning": 2 * sum(f[f"blocks.{i}.depthwise"] for i in (13, 14, 15))}
    for i, phase in enumerate(CATS_VS_DOGS.phases):
        a.set_phase(i)
        lowest = next(f for name, f in layers if is_trainable(f"{name}.kernel", phase.trainable))
        expected = ours["phases"][phase.name] - lowest - depthwise_backward[phase.name]
        assert _counted(lambda: a.train_step(x, y)) == 2 * expected, phase.name
    assert _counted(lambda: a.predict(x)) == 2 * ours["forward"]
