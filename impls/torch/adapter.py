"""PyTorch adapter: the spec's model eager or its train step torch.compile'd, fp32 (TF32 off) or bf16 autocast,
phased training, host or device-resident batches, on one device or data-parallel under torchrun
(impls/torch/parallel.py)."""
from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from bench.harness import ranks
from bench.harness.adapter import check_names
from bench.spec import LossType, TaskSpec
from bench.spec.shapes import is_trainable, weight_shapes
from impls.torch.device import configure, copy_in, device_name, memory, select_device
from impls.torch.layers import Net, from_torch, to_torch, torch_names
from impls.torch.optim import build_optimizer
from impls.torch.parallel import Replicas


def loss_fn(loss: LossType) -> tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], torch.dtype]:
    """The task's loss on float32 logits, and the dtype its labels take."""
    if loss is LossType.SIGMOID_BINARY_CROSS_ENTROPY:
        return (lambda logits, y: F.binary_cross_entropy_with_logits(logits.squeeze(1), y)), torch.float32
    return F.cross_entropy, torch.long


def forward_loss(forward: Callable[[torch.Tensor], torch.Tensor], loss: Callable, device_type: str,
                 bf16: bool) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """(x NCHW, y) -> the task's loss: the forward under autocast, the loss on its float32 logits. Compiled
    mode compiles this as one graph; AOTAutograd compiles its backward with it."""
    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            logits = forward(x)
        return loss(logits, y)
    return run


class Adapter:
    name: ClassVar[str] = "torch"

    def versions(self) -> dict[str, str]:
        v = {"torch": torch.__version__}
        if torch.version.cuda:
            v["cuda"] = str(torch.version.cuda)
        return v

    def build(self, task: TaskSpec, weights: dict[str, np.ndarray], device: str, seed: int,
              mode: str = "default", precision: str = "fp32", devices: int = 1) -> None:
        self.device = select_device(device)
        self.replicas = Replicas(self.device, devices) if devices > 1 else None
        if self.replicas:
            self.device = self.replicas.device
        self.compiled, self._settings = configure(self.device, mode, precision)
        if self.replicas:
            self._settings["launcher"] = self.replicas.describe(task.batch_size, self.compiled)
        self.bf16 = precision == "bf16"
        # Dropout only (weights come from the file); per rank, so that ranks draw different masks.
        torch.manual_seed(seed + (ranks.rank() if self.replicas else 0))
        self.task = task
        self.loss, self.label_dtype = loss_fn(task.loss)
        model = Net(task)
        self.names = torch_names(task, list(weight_shapes(task)))
        state = model.state_dict()  # tensors share storage with the parameters and buffers
        neutral = {key: n for n, key in self.names.items()}
        check_names("torch", task, {neutral.get(k, k) for k in state if not k.endswith("num_batches_tracked")})
        with torch.no_grad():
            for k, v in weights.items():
                state[self.names[k]].copy_(torch.from_numpy(np.ascontiguousarray(to_torch(task, k, v))))
        # Photos (3 channels) run channels_last: the NHWC batch permuted to NCHW already is, and weights
        # and activations in that format are much faster on CPU; a 1-channel batch is the same either
        # way, and the MNIST CNN gained nothing from it (docs/protocol.md).
        self.memory_format = torch.channels_last if task.input_shape[-1] > 1 else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self.memory_format)
        # The training forward (data-parallel: set_phase wraps it in DDP); set_phase compiles the step around
        # it (one static graph per phase: requires_grad changes recompile once). Evaluation stays eager.
        self.forward: Callable[[torch.Tensor], torch.Tensor] = self.model
        self._loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
        self._update: Callable[[], Any] | None = None
        params = dict(self.model.named_parameters())
        self._params = {n: params[key] for n, key in self.names.items() if key in params}
        for p in self.model.parameters():
            p.requires_grad_(False)  # no phase yet: nothing trains
        self.opt: torch.optim.Optimizer | None = None

    def set_phase(self, index: int) -> None:
        phase = self.task.phases[index]
        aux = self.task.aux_head.layer.name if self.task.aux_head else None
        trainable = []
        for name, p in self._params.items():
            train = is_trainable(name, phase.trainable) and not name.startswith(f"{aux}.")
            # requires_grad=False up to the first trainable layer: autograd records nothing there.
            p.requires_grad_(train)
            p.grad = None
            if train:
                trainable.append(p)
        self.opt = build_optimizer(phase.optimizer, trainable)  # a fresh optimizer state per phase
        if self.replicas:
            self.forward = self.replicas.wrap(self.model)  # compiled below, with the loss
        run = forward_loss(self.forward, self.loss, self.device.type, self.bf16)
        # Lazily created optimizer state (SGD momentum, RMSprop, Adagrad) recompiles the update once, at
        # step 2; Adam's state is made by dynamo before tracing. Steady state: no recompiles (the test).
        self._loss_of = torch.compile(run, dynamic=False) if self.compiled else run
        self._update = torch.compile(self.opt.step, dynamic=False) if self.compiled else self.opt.step

    def settings(self) -> dict[str, str]:
        return dict(self._settings)

    def param_count(self) -> int:
        aux = self.task.aux_head.layer.name if self.task.aux_head else None
        return sum(p.numel() for n, p in self._params.items() if not n.startswith(f"{aux}."))

    def trainable_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def _x(self, x: np.ndarray) -> torch.Tensor:
        # NHWC batch -> NCHW view (no copy); to(device) is a no-op on CPU.
        return torch.from_numpy(x).to(self.device, non_blocking=True).permute(0, 3, 1, 2)

    def to_device(self, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        # Labels converted on the device, after the copy: the host array stays as small as it came.
        return copy_in(x, self.device), copy_in(y, self.device).to(self.label_dtype)

    def train_step(self, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> torch.Tensor:
        if self.replicas:
            x, y = self.replicas.shard(x, y)  # before the copy: each rank moves only its rows
        if isinstance(x, np.ndarray):
            x, y = self.to_device(x, y)
        return self._step(x, y)

    def put_train(self, x: np.ndarray, y: np.ndarray) -> None:
        self._train = (torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device, self.label_dtype))

    def set_order(self, order: np.ndarray) -> None:
        # A copy (the caller may reuse its array); on CUDA queued without waiting for the steps before it.
        self._order = copy_in(np.array(order, dtype=np.int64), self.device)

    def train_step_at(self, i: int) -> torch.Tensor:
        b = self.task.batch_size
        rows = self._order[i * b:(i + 1) * b]  # a view of the device's order: no copy, no sync
        if self.replicas:
            rows, _ = self.replicas.shard(rows, rows)
        x, y = self._train
        return self._step(x.index_select(0, rows), y.index_select(0, rows))

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimizer step on a batch already on the device: x NHWC float32, y labels (both paths)."""
        if self.opt is None or self._loss_of is None or self._update is None:
            raise RuntimeError("set_phase() must be called before train_step()")
        self.model.train()  # dropout on; FrozenBatchNorm2d stays in inference mode
        loss = self._loss_of(x.permute(0, 3, 1, 2), y.to(self.label_dtype))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self._update()
        return self.replicas.mean(loss) if self.replicas else loss.detach()

    def _infer(self, fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray) -> torch.Tensor:
        self.model.eval()
        try:
            with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                return fn(self._x(x))
        finally:
            self.model.train()

    def _numpy(self, fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray) -> np.ndarray:
        # .numpy() would share memory with the tensor: copy out explicitly.
        return self._infer(fn, x).float().cpu().numpy().copy()

    def logits(self, x: np.ndarray) -> torch.Tensor:
        """Inference-mode logits as the framework returns them (float32 in both precisions)."""
        return self._infer(self.model, x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._numpy(self.model, x)

    def predict_aux(self, x: np.ndarray) -> np.ndarray:
        return self._numpy(self.model.aux_logits, x)

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        return self._numpy(self.model.features, x)

    def inference(self) -> Callable[[np.ndarray], np.ndarray]:
        # Compiled mode: a graph of the eval-mode model, compiled after training (never during it).
        fn = torch.compile(self.model, dynamic=False) if self.compiled else self.model
        return functools.partial(self._numpy, fn)

    def formats(self) -> tuple[str, ...]:
        return ("state_dict", "export")

    def save(self, fmt: str, folder: Path) -> None:
        if fmt == "state_dict":
            torch.save(self.model.state_dict(), folder / "model.pt")
            return
        self.model.eval()  # exported in inference mode: dropout is traced away
        try:
            example = self._x(np.zeros((2, *self.task.input_shape), np.float32))
            program = torch.export.export(self.model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        finally:
            self.model.train()
        torch.export.save(program, folder / "model.pt2")

    def load(self, fmt: str, folder: Path) -> Callable[[np.ndarray], np.ndarray]:
        if fmt == "state_dict":
            model = Net(self.task)
            # weights_only: tensors and plain containers only, no pickled code runs
            model.load_state_dict(torch.load(folder / "model.pt", map_location=self.device, weights_only=True))
            module: torch.nn.Module = model.to(self.device, memory_format=self.memory_format).eval()
        else:
            module = torch.export.load(folder / "model.pt2").module()
        return functools.partial(self._numpy, module)

    def get_weights(self) -> dict[str, np.ndarray]:
        state = self.model.state_dict()
        # .numpy() shares memory with the live tensor on CPU: always copy, into C order.
        return {n: np.array(from_torch(self.task, n, state[key].detach().cpu().numpy()), order="C", copy=True)
                for n, key in self.names.items()}

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def device_name(self) -> str:
        return device_name(self.device)

    def mark(self, out: torch.Tensor) -> torch.cuda.Event | None:
        # CPU steps are synchronous: done when they return, nothing to wait for.
        if self.device.type != "cuda":
            return None
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))
        return event

    def wait(self, token: torch.cuda.Event | None) -> None:
        if token is not None:
            token.synchronize()

    def reset_device_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def device_memory(self) -> dict[str, int | None]:
        return memory(self.device)

    def matmul_fp32(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # Plain float32 tensors, no autocast: the product runs under the build's TF32 pins alone.
        ta, tb = (torch.from_numpy(np.ascontiguousarray(m, np.float32)).to(self.device) for m in (a, b))
        return (ta @ tb).cpu().numpy().copy()

