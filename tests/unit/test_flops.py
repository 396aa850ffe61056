"""Analytic FLOPs per sample (bench/spec/flops.py) against hand counts and the published EfficientNet-Lite0 figure."""
import dataclasses

from bench.spec import TASKS, Phase, PhotoInput
from bench.spec.flops import layer_flops, phase_train_flops, task_flops

CATS_VS_DOGS = TASKS["cats_vs_dogs"]


def test_mnist_counts_match_a_hand_calculation():
    mlp = task_flops(TASKS["mnist_mlp"])
    assert mlp["forward"] == 2 * (784 * 512 + 512 * 512 + 512 * 10)
    assert mlp["train"] == 3 * mlp["forward"]
    # conv 3x3: 28 -> 26 (32 maps), pool -> 13; conv 3x3 -> 11 (64 maps), pool -> 5; dense 5*5*64 -> 10
    cnn = task_flops(TASKS["mnist_cnn"])
    assert cnn["forward"] == 2 * (26 * 26 * 32 * 3 * 3 * 1 + 11 * 11 * 64 * 3 * 3 * 32 + 5 * 5 * 64 * 10)
    assert cnn["train"] == 3 * cnn["forward"]


def test_efficientnet_lite0_forward_matches_the_published_madds():
    # tensorflow/tpu models/official/efficientnet/lite/README.md: efficientnet-lite0, 224x224,
    # 4.7M params, 407M MAdds (ImageNet classifier included). That figure comes from a graph
    # profiler that also counts BatchNorm, ReLU6, residual adds and pooling; counting conv and dense
    # multiply-adds only must land a little below it.
    layers = dict(layer_flops(CATS_VS_DOGS))
    backbone = sum(f for name, f in layers.items() if name != "top")
    macs = (backbone + 2 * 1280 * 1000) // 2  # with the ImageNet classifier (1280 features -> 1000 classes)
    assert 0.94 * 407e6 < macs < 407e6
    # The stem by hand: 3x3 stride-2 'same' conv, 224 -> 112, 3 -> 32 channels.
    assert layers["stem"] == 2 * 112 * 112 * 32 * 3 * 3 * 3
    # A depthwise conv costs k*k per output, not k*k*C: blocks.1 expands 16 -> 96, 3x3 stride 2, 112 -> 56.
    assert layers["blocks.1.depthwise"] == 2 * 56 * 56 * 96 * 3 * 3


def test_transfer_phases_follow_the_frozen_and_trainable_rule():
    layers = layer_flops(CATS_VS_DOGS)
    f = dict(layers)
    names = [n for n, _ in layers]
    fwd = sum(f.values())
    flops = task_flops(CATS_VS_DOGS)
    assert flops["forward"] == fwd
    # Feature extraction: only the Dense head trains; the backbone runs forward only.
    assert flops["phases"]["feature_extraction"] == fwd + 2 * f["top"] == flops["train"]
    # Fine-tuning: blocks 13-15, head and top train (3x); everything below blocks.13 is forward only.
    first = names.index("blocks.13.expand")
    below, above = sum(f[n] for n in names[:first]), sum(f[n] for n in names[first:])
    assert flops["phases"]["fine_tuning"] == below + 3 * above
    # A frozen layer *above* the lowest trainable one still carries the backward pass through its
    # activations (2x): train only blocks.13, so blocks 14-15, head and top are frozen-but-above.
    b13 = sum(f[n] for n in names if n.startswith("blocks.13."))
    last = names.index("blocks.13.project")
    middle = sum(f[n] for n in names[last + 1:])
    assert phase_train_flops(layers, ("blocks.13",)) == below + 3 * b13 + 2 * middle
    # Nothing trainable: forward only.
    assert phase_train_flops(layers, ()) == fwd


def test_a_variant_task_gets_its_own_count():
    # FLOPs follow the spec: twice the crop side (448 halves evenly down to 14) is 4x the conv work.
    big = dataclasses.replace(CATS_VS_DOGS, input=dataclasses.replace(CATS_VS_DOGS.input, size=448),
                              phases=(Phase("head", CATS_VS_DOGS.phases[0].optimizer, ("top",)),))
    assert isinstance(big.input, PhotoInput)
    f224, f448 = task_flops(CATS_VS_DOGS), task_flops(big)
    assert set(f448["phases"]) == {"head"}
    top = 2 * 1280
    assert f448["forward"] - top == 4 * (f224["forward"] - top)
