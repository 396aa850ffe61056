"""torch --mode compiled compiles the whole train step: forward and loss (with their backward) and the
optimizer update run as dynamo-compiled frames, train as eager does, and stop recompiling after step 2."""
from __future__ import annotations

import pytest

from bench import weights
from bench.spec import SGD, TASKS, Adam
from tests.frameworks.helpers import batches, built, with_optimizer, without_dropout

torch = pytest.importorskip("torch")
from torch._C._dynamo.eval_frame import _debug_get_cache_entry_list as cache_entries  # noqa: E402

pytestmark = pytest.mark.torch

TASK = without_dropout(TASKS["mnist_mlp"])  # RMSprop: its state is made lazily, on the first step
WARM, STEADY = 3, 3  # lazily made optimizer state recompiles the update once, at step 2
# As tests/frameworks/test_modes.py: float32 rounding of fused kernels, measured 2.4e-7 / 3.7e-8 here.
LOSS_TOL, WEIGHT_TOL = 1e-5, 1e-6


@pytest.fixture(autouse=True)
def fresh_dynamo():
    # dynamo caches per code object with a recompile limit (8) shared by every optimizer in the process:
    # other tests' compiled adapters must not push these steps back to eager, nor these theirs.
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def train(task, mode: str, steps):
    adapter = built("torch", task, weights.init_weights(task, 1), mode=mode)
    losses = [float(adapter.train_step(x, y)) for x, y in steps]
    return adapter, losses, adapter.get_weights()


def compiled_frames(adapter) -> tuple[int, int]:
    """Dynamo cache entries of the step's two compiled callables: forward + loss, and optimizer.step."""
    loss_code = adapter._loss_of._torchdynamo_orig_callable.__code__
    return len(cache_entries(loss_code)), len(cache_entries(adapter.opt.step.__code__))


def compiled_frames_or_none(adapter) -> tuple[int, int] | None:
    """None for an eager adapter: nothing wrapped, no optimizer frame compiled."""
    if hasattr(adapter._loss_of, "_torchdynamo_orig_callable"):
        return compiled_frames(adapter)
    assert not cache_entries(adapter.opt.step.__code__)
    return None


def test_compiled_training_runs_the_update_compiled_and_equals_eager():
    steps = batches(TASK, 4)
    eager, l_eager, w_eager = train(TASK, "eager", steps)
    assert compiled_frames_or_none(eager) is None
    compiled, l_comp, w_comp = train(TASK, "compiled", steps)
    n_loss, n_update = compiled_frames(compiled)
    assert n_loss >= 1 and n_update >= 1, (n_loss, n_update)
    assert "optimizer.step" in compiled.settings()["mode"]
    assert l_eager[-1] < l_eager[0] - 0.3  # it trained
    assert max(abs(a - b) for a, b in zip(l_eager, l_comp)) < LOSS_TOL, (l_eager, l_comp)
    assert max(float(abs(w_eager[k] - w_comp[k]).max()) for k in w_eager) < WEIGHT_TOL


@pytest.mark.parametrize("optimizer", [None, SGD(lr=0.01, momentum=0.9),
                                       Adam(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7)],
                         ids=["rmsprop", "sgd-momentum", "adam"])
def test_no_recompiles_in_the_steady_state(optimizer):
    task = with_optimizer(TASK, optimizer) if optimizer else TASK
    steps = batches(task, WARM + STEADY)
    adapter = built("torch", task, weights.init_weights(task, 1), mode="compiled")
    for x, y in steps[:WARM]:
        float(adapter.train_step(x, y))
    warm = compiled_frames(adapter)
    with torch._dynamo.config.patch(error_on_recompile=True):  # a recompile now raises
        for x, y in steps[WARM:]:
            float(adapter.train_step(x, y))
    assert compiled_frames(adapter) == warm
