"""PyTorch adapter: the spec's model eager or torch.compile'd, fp32 (TF32 off) or bf16 autocast, spec optimizer rules."""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from bench.adapter import DeviceUnavailable, cpu_threads, unsupported
from bench.modes import check_precision, resolve_mode
from bench.envinfo import cpu_model
from bench.spec import Adam, RMSprop, TaskSpec
from impls.torch.models import SpecNet, from_torch, to_torch, torch_name
from impls.torch.optim import RMSpropEpsInSqrt


def _pin_fp32() -> None:
    """fp32 means fp32: cuDNN convs default to TF32 on Ampere+ (TF and JAX are pinned too).

    torch >= 2.9 has the fp32_precision API; older releases only the allow_tf32 flags. The two
    must not be mixed, and assigning the new attribute on an old torch would silently do nothing.
    """
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def _optimizer(spec: Any, params: Any) -> torch.optim.Optimizer:
    if isinstance(spec, RMSprop):
        if spec.momentum or spec.centered:
            raise unsupported("RMSprop with momentum or centered", "torch")
        return RMSpropEpsInSqrt(params, lr=spec.lr, rho=spec.rho, eps=spec.eps)
    if isinstance(spec, Adam):
        # torch's Adam is the spec's (Kingma & Ba) rule; every default is overridden.
        return torch.optim.Adam(params, lr=spec.lr, betas=(spec.beta1, spec.beta2), eps=spec.eps,
                                weight_decay=0.0, amsgrad=False, foreach=True)
    raise unsupported(type(spec).__name__, "torch")


def select_device(device: str) -> torch.device:
    """The torch device of a build, with the shared CPU thread count and fp32 pinned on GPU."""
    if device == "gpu":
        if not torch.cuda.is_available():
            raise DeviceUnavailable("torch sees no CUDA GPU (torch.cuda.is_available() is False)")
        _pin_fp32()
        chosen = torch.device("cuda")
    elif device == "cpu":
        chosen = torch.device("cpu")
    else:
        raise DeviceUnavailable(f"unknown device {device!r}")
    if cpu_threads():
        torch.set_num_threads(cpu_threads())
    return chosen


def configure(device: torch.device, mode: str, precision: str) -> tuple[bool, dict[str, str]]:
    """Whether to torch.compile, and the settings record of a build (bench/modes.py).

    GPU autotuning is on for all three frameworks (TF and XLA tune by default): here cudnn.benchmark.
    """
    compiled = resolve_mode("torch", "cpu" if device.type == "cpu" else "gpu", mode) == "compiled"
    check_precision(precision)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return compiled, {
        "mode": "torch.compile(model), inductor, dynamic=False" if compiled else "eager",
        "precision": (f"torch.autocast({device.type}, bfloat16) around forward and loss, output layer and loss "
                      "in float32, float32 weights and optimizer" if precision == "bf16"
                      else "float32" + (", TF32 off" if device.type == "cuda" else "")),
        "autotune": "cudnn.benchmark=True" if device.type == "cuda" else "none on CPU",
    }


class Adapter:
    name: ClassVar[str] = "torch"

    def versions(self) -> dict[str, str]:
        v = {"torch": torch.__version__}
        if torch.version.cuda:
            v["cuda"] = str(torch.version.cuda)
        return v

    def build(self, task: TaskSpec, weights: dict[str, np.ndarray], device: str, seed: int,
              mode: str = "default", precision: str = "fp32") -> None:
        self.device = select_device(device)
        compiled, self._settings = configure(self.device, mode, precision)
        self.bf16 = precision == "bf16"
        torch.manual_seed(seed)  # dropout only: weights come from the file
        self.task = task
        self.model = SpecNet(task)
        state = {torch_name(k): torch.from_numpy(np.ascontiguousarray(to_torch(task, k, v))) for k, v in weights.items()}
        self.model.load_state_dict(state, strict=True)
        self.model.to(self.device).train()
        self.opt = _optimizer(task.optimizer, self.model.parameters())
        # Forward (and with it the backward AOTAutograd derives) compiled; the optimizer step stays eager.
        # dynamic=False: one static graph per batch shape (train, eval), no symbolic-shape recompiles.
        self.forward = torch.compile(self.model, dynamic=False) if compiled else self.model

    def settings(self) -> dict[str, str]:
        return dict(self._settings)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """Forward under bf16 autocast when asked (SpecNet runs its output layer in float32 then)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.forward(x)

    def param_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def _x(self, x: np.ndarray) -> torch.Tensor:
        # NHWC batch -> NCHW view (no copy for one channel); to(device) is a no-op on CPU.
        return torch.from_numpy(x).permute(0, 3, 1, 2).to(self.device, non_blocking=True)

    def train_step(self, x: np.ndarray, y: np.ndarray) -> torch.Tensor:
        logits = self._logits(self._x(x))
        loss = F.cross_entropy(logits, torch.from_numpy(y).to(self.device, torch.long))  # float32 logits
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def logits(self, x: np.ndarray) -> torch.Tensor:
        """Inference-mode logits as the framework returns them (float32 in both precisions)."""
        self.model.eval()
        try:
            with torch.inference_mode():
                return self._logits(self._x(x))
        finally:
            self.model.train()

    def predict(self, x: np.ndarray) -> np.ndarray:
        # .numpy() would share memory with the tensor: copy out explicitly.
        return self.logits(x).float().cpu().numpy().copy()

    def get_weights(self) -> dict[str, np.ndarray]:
        state = self.model.state_dict()
        return {k: from_torch(self.task, k, state[torch_name(k)].detach().cpu().numpy().copy())
                for k in _neutral_names(state)}

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def device_name(self) -> str:
        return torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else cpu_model()

    def device_peak_bytes(self) -> int | None:
        return int(torch.cuda.max_memory_allocated()) if self.device.type == "cuda" else None


def _neutral_names(state: dict[str, Any]) -> list[str]:
    return [k.replace(".weight", ".kernel") for k in state]
