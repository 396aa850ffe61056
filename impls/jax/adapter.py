"""JAX/Flax NNX adapter: one jitted, donated train step per phase over (graphdef, state); fp32 or bf16 compute."""
from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, serialization

from bench.harness.adapter import check_names
from bench.spec import LossType, TaskSpec
from bench.spec.shapes import BN_STATISTICS, is_trainable
from impls.jax.device import configure, device_memory, device_name, select_device
from impls.jax.layers import Net, dropouts, neutral_name
from impls.jax.optim import build_tx
from impls.jax.parallel import data_mesh, launcher_words, replicated, step_shardings
from impls.jax.resident import Resident, no_data_parallel, resident_step


def loss_fn(loss: LossType) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The task's loss on float32 logits and integer labels."""
    if loss is LossType.SIGMOID_BINARY_CROSS_ENTROPY:
        return lambda logits, y: optax.sigmoid_binary_cross_entropy(logits[:, 0], y.astype(logits.dtype)).mean()
    return lambda logits, y: optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def _train(gdef: Any, gdef_opt: Any, wrt: Any, loss: Callable, states: Any, x: jax.Array, y: jax.Array) -> Any:
    model = nnx.merge(gdef, states[0])
    opt = nnx.merge(gdef_opt, states[1])
    # DiffState: only `wrt` is a differentiation input; the rest enters as constants, so JAX never
    # builds the backward pass of frozen layers (nor the input gradient below them).
    value, grads = nnx.value_and_grad(lambda m, x, y: loss(m(x, train=True), y),
                                      argnums=nnx.DiffState(0, wrt))(model, x, y)
    opt.update(model, grads)
    return (nnx.state(model), nnx.state(opt)), value


def _predict(gdef: Any, method: str, model_state: Any, x: jax.Array) -> jax.Array:
    return getattr(nnx.merge(gdef, model_state), method)(x)


def _in_phase(prefixes: tuple[str, ...], path: tuple[Any, ...], _var: object) -> bool:
    """An NNX filter: whether the variable at `path` trains under these prefixes."""
    return is_trainable(neutral_name(path), prefixes)


class Adapter:
    name: ClassVar[str] = "jax"

    def versions(self) -> dict[str, str]:
        import flax

        return {"jax": jax.__version__, "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else "",
                "flax": flax.__version__, "optax": optax.__version__}

    def build(self, task: TaskSpec, weights: dict[str, np.ndarray], device: str, seed: int,
              mode: str = "default", precision: str = "fp32", devices: int = 1) -> None:
        self._settings, self.precision, self.seed = configure(device, mode, precision), precision, seed
        self.device = select_device(device)
        # Data-parallel: the state replicated on every device of a 1-D mesh, each batch split along it.
        self.mesh = data_mesh(device, devices) if devices > 1 else None
        self._place: Any = replicated(self.mesh) if self.mesh else self.device
        if self.mesh:
            self._settings["launcher"] = launcher_words(self.mesh)
        self.task, self.loss = task, loss_fn(task.loss)
        model = self._abstract()
        named = {neutral_name(p): v for p, v in nnx.to_flat_state(nnx.state(model, (nnx.Param, nnx.BatchStat)))}
        check_names("jax", task, set(named))
        for name, var in named.items():
            var.set_value(jax.device_put(np.asarray(weights[name], np.float32), self.device))
        self._gdef, model_state = nnx.split(model)
        self._sizes = {n: int(np.prod(v.shape)) for n, v in named.items() if not n.endswith(BN_STATISTICS)}
        self.states = (jax.device_put(model_state, self._place), None)
        self._pred = jax.jit(functools.partial(_predict, self._gdef, "__call__"))
        self._pred_aux = jax.jit(functools.partial(_predict, self._gdef, "aux_logits")) if task.aux_head else None
        self._pred_features = jax.jit(functools.partial(_predict, self._gdef, "features"))
        self.step: Any = None
        self.step_at: Any = None
        self._resident: Resident | None = None
        self._last: jax.Array | None = None  # the last step's loss: what sync() blocks on
        self._trainable: list[str] = []

    def _abstract(self) -> Net:
        with jax.default_device(self.device):
            # Abstract build: running the initializers that the neutral weights overwrite would compile
            # one XLA program per shape, for nothing.
            model = nnx.eval_shape(lambda: Net(self.task, nnx.Rngs(params=0, dropout=self.seed), self.precision))
            # The dropout streams, the one real random state: forked from the seed in construction
            # order, as a concretely built Net(task, nnx.Rngs(params=0, dropout=seed)) would fork them.
            rngs = nnx.Rngs(dropout=self.seed)
            for layer in dropouts(model):
                layer.rngs = rngs["dropout"].fork()
        return model

    def set_phase(self, index: int) -> None:
        phase = self.task.phases[index]
        aux = self.task.aux_head.layer.name if self.task.aux_head else None
        self._trainable = [n for n in self._sizes if is_trainable(n, phase.trainable) and not n.startswith(f"{aux}.")]
        wrt = nnx.All(nnx.Param, functools.partial(_in_phase, tuple(self._trainable)))
        model = nnx.merge(self._gdef, self.states[0])
        with jax.default_device(self.device):
            opt = nnx.Optimizer(model, build_tx(phase.optimizer), wrt=wrt)  # state for the trainable set only
            gdef_opt, opt_state = nnx.split(opt)
        self.states = (self.states[0], jax.device_put(opt_state, self._place))
        # Donating the state lets XLA update the parameters in place instead of copying them each step.
        train = functools.partial(_train, self._gdef, gdef_opt, wrt, self.loss)
        self.step = jax.jit(train, donate_argnums=0, **step_shardings(self.mesh))
        self.step_at = None if self.mesh else resident_step(train, self.task.batch_size)
        self._last = None  # the new optimizer state came from a transfer, not from a step

    def settings(self) -> dict[str, str]:
        return dict(self._settings)

    def param_count(self) -> int:
        aux = self.task.aux_head.layer.name if self.task.aux_head else None
        return sum(n for k, n in self._sizes.items() if not k.startswith(f"{aux}."))

    def trainable_count(self) -> int:
        return sum(self._sizes[n] for n in self._trainable)

    def train_step(self, x: np.ndarray, y: np.ndarray) -> jax.Array:
        if self.step is None:
            raise RuntimeError("set_phase() must be called before train_step()")
        # NumPy goes straight into the jitted call: its C++ dispatch copies it to the state's device,
        # cheaper than two jax.device_put calls first (docs/protocol.md has the figures).
        self.states, loss = self.step(self.states, x, y)
        self._last = loss
        return loss

    def put_train(self, x: np.ndarray, y: np.ndarray) -> None:
        no_data_parallel(self.mesh)
        self._resident = Resident(x, y, self.device)

    def set_order(self, order: np.ndarray) -> None:
        no_data_parallel(self.mesh)
        if self._resident is None:
            raise RuntimeError("put_train() must be called before set_order()")
        self._resident.set_order(order)

    def train_step_at(self, i: int) -> jax.Array:
        no_data_parallel(self.mesh)
        if self.step_at is None or self._resident is None:
            raise RuntimeError("set_phase() and put_train() must be called before train_step_at()")
        self.states, loss = self.step_at(self.states, *self._resident.at(i))
        self._last = loss
        return loss

    def to_device(self, x: np.ndarray, y: np.ndarray) -> tuple[jax.Array, jax.Array]:
        # device_put returns at once (the copy is asynchronous), so the prefetch thread never waits.
        return jax.device_put(x, self.device), jax.device_put(y, self.device)

    def mark(self, out: jax.Array) -> jax.Array:
        return out  # the loss array is its own completion token

    def wait(self, token: jax.Array) -> None:
        token.block_until_ready()

    def logits(self, x: np.ndarray) -> jax.Array:
        """Inference-mode logits as the framework returns them (float32 in both precisions)."""
        return self._pred(self.states[0], x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.logits(x), dtype=np.float32)

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._pred_features(self.states[0], x), dtype=np.float32)

    def predict_aux(self, x: np.ndarray) -> np.ndarray:
        assert self._pred_aux is not None, "this task has no auxiliary head"
        return np.asarray(self._pred_aux(self.states[0], x), dtype=np.float32)

    def inference(self) -> Callable[[np.ndarray], np.ndarray]:
        return self.predict  # the jitted apply

    def formats(self) -> tuple[str, ...]:
        return ("msgpack",)

    def save(self, fmt: str, folder: Path) -> None:
        # The NNX state of parameters and BatchNorm statistics, as flax.serialization writes it (msgpack).
        state = self._weights_state()
        (folder / "model.msgpack").write_bytes(serialization.msgpack_serialize(jax.device_get(state.to_pure_dict())))

    def load(self, fmt: str, folder: Path) -> Callable[[np.ndarray], np.ndarray]:
        pure = serialization.msgpack_restore((folder / "model.msgpack").read_bytes())  # data only: no code
        model = self._abstract()
        state = nnx.state(model, (nnx.Param, nnx.BatchStat))
        nnx.replace_by_pure_dict(state, pure)
        nnx.update(model, jax.device_put(state, self.device))
        gdef, model_state = nnx.split(model)
        pred = jax.jit(functools.partial(_predict, gdef, "__call__"))
        return lambda x: np.asarray(pred(model_state, x), dtype=np.float32)

    def _weights_state(self) -> nnx.State:
        """The parameters and BatchNorm statistics of the current model state."""
        return nnx.state(nnx.merge(self._gdef, self.states[0]), (nnx.Param, nnx.BatchStat))

    def get_weights(self) -> dict[str, np.ndarray]:
        flat = nnx.to_flat_state(self._weights_state())
        # Copies: the next donated step reuses these device buffers.
        return {neutral_name(p): np.array(v[...], dtype=np.float32, copy=True) for p, v in flat}

    def sync(self) -> None:
        # One step's outputs share one PJRT definition event (tests/frameworks/test_jax_sync.py), so its
        # loss is ready only when the new states are: one wait instead of a walk over every leaf.
        jax.block_until_ready(self._last if self._last is not None else self.states)

    def device_name(self) -> str:
        return device_name(self.device)

    def reset_device_peak(self) -> None:
        pass  # JAX has no reset of peak_bytes_in_use: device_memory's peak runs from process start

    def device_memory(self) -> dict[str, int | None]:
        return device_memory(self.device)

    def matmul_fp32(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # jax_default_matmul_precision (select_device) governs this product as it does the model's.
        product = jnp.matmul(jax.device_put(a, self.device), jax.device_put(b, self.device))
        return np.asarray(product, dtype=np.float32)
