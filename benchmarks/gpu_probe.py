"""The GPU acceptance run's in-process check of one framework (benchmarks/gpu_acceptance.py runs it as a child):
GPU logits against CPU logits from the same weights, and after a train step every tensor the adapter holds on
the GPU. Prints one line, PROBE_PREFIX + JSON.

    python benchmarks/gpu_probe.py FW [--data-root DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: bench is imported from this checkout

PROBE_PREFIX = "@probe "


def probe(fw: str, data_root: Path | None) -> dict:
    """In-process: each task built on CPU and GPU from the same (verification) weights -> max |Δ logit|; then on
    the GPU one phase-0 train step on a smoke batch, after which every tensor the adapter holds must be there."""
    from bench import data, weights
    from bench.data.batches import train_batches
    from bench.harness.adapter import load_adapter
    from bench.spec import TASKS

    root = data_root or data.default_data_root()
    result: dict = {"logits": {}, "off_gpu": {}, "settings": {}}
    for name, task in TASKS.items():
        w = weights.for_verification(weights.init_weights(task, 0, root), 0)
        x = data.verification_inputs(task, root)
        built = {}
        for dev in ("cpu", "gpu"):
            built[dev] = load_adapter(fw)
            built[dev].build(task, w, dev, 0)
        diff = float(abs(built["cpu"].predict(x).astype("float64") - built["gpu"].predict(x)).max())
        result["logits"][name] = [diff, task.verify_tolerance]
        gpu = built["gpu"]
        gpu.set_phase(0)
        split = data.load(task, task.datasets[0], task.profiles["smoke"], root).train
        gpu.train_step(*next(train_batches(task, split, 0, 0)))
        gpu.sync()
        result["off_gpu"][name] = off_gpu(fw, gpu)
        result["settings"][name] = gpu.settings()
    return result


def off_gpu(fw: str, adapter: object) -> list[str]:
    """Names of the tensors an adapter holds (model, optimizer, state) that are not on a GPU: empty = no fallback."""
    if fw == "jax":
        import jax

        leaves = jax.tree_util.tree_leaves_with_path(adapter.states)
        return [jax.tree_util.keystr(k) for k, v in leaves
                if isinstance(v, jax.Array) and any(d.platform != "gpu" for d in v.devices())]
    if fw == "torch":
        import torch

        held = []
        for attr, v in vars(adapter).items():  # the model, each optimizer and its state, loose tensors
            if isinstance(v, torch.nn.Module):
                held += [(f"{attr}.{n}", t) for n, t in [*v.named_parameters(), *v.named_buffers()]]
            elif isinstance(v, torch.optim.Optimizer):
                held += [(f"{attr}.state.{i}.{k}", t) for i, s in enumerate(v.state.values()) for k, t in s.items()
                         if isinstance(t, torch.Tensor) and t.dim() > 0]  # 0-dim step counters live on the CPU
            elif isinstance(v, torch.Tensor):
                held.append((attr, v))
        return [n for n, t in held if not t.is_cuda]
    import keras

    held = list(adapter.built.model.variables)
    held += [v for x in vars(adapter).values() if isinstance(x, keras.optimizers.Optimizer) for v in x.variables]
    return [v.path for v in held if "GPU" not in str(getattr(v.value, "device", ""))]



def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_probe", description=__doc__.split("\n\n")[0])
    p.add_argument("framework", choices=("tf", "torch", "jax"))
    p.add_argument("--data-root", type=Path)
    args = p.parse_args(argv)
    print(PROBE_PREFIX + json.dumps(probe(args.framework, args.data_root)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
