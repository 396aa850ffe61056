"""What the GPU machine lacks, in one folder (docs/gpu.md): wheels of the project's pure-Python dependencies that
its image does not have, full MNIST, a few photos per class and the EfficientNet-Lite0 ImageNet weights.

    python benchmarks/gpu_bundle.py [DIR] [--data-root DIR] [--photos 40,25] [--no-wheels]

DIR (default gpu_bundle/, git-ignored) gets wheels/ and data/{mnist,cats_vs_dogs/{train,val}/{cat,dog},weights}/;
then it prints the one command to run on the GPU machine.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# `import bench` and the acceptance run need these, and the GPU image's list (Python 3.12: torch, JAX, flax, optax,
# pandas, rich, scipy, matplotlib, scikit-learn, scikit-image) does not name them. mlxtend ships the smoke profile's
# digits; submitit (and its cloudpickle) is imported only by --executor slurm, but small; nvidia-ml-py gives GPU cells
# their NVML column. All pure Python: a copy already on the image is harmless (/tmp/site comes first).
WHEELS = ("mlxtend", "submitit", "cloudpickle", "nvidia-ml-py")
MNIST = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz")
# The GPU machine's interpreter: wheels are chosen for it, not for this one.
TARGET = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:",
          "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64", "--platform", "any"]


def pinned(name: str) -> str:
    """name==the version installed here (what the tests ran with), or the bare name when it is not installed."""
    from importlib import metadata

    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return name


def pip_download_cmd(dest: Path, names: tuple[str, ...] = WHEELS) -> list[str]:
    """`pip download` of the wheels, no dependencies (the GPU image has them), for the GPU machine's Python."""
    return [sys.executable, "-m", "pip", "download", "--no-deps", "-q", *TARGET, "-d", str(dest),
            *map(pinned, names)]


def copy_mnist(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in MNIST:
        if not (src / name).is_file():
            raise SystemExit(f"gpu_bundle: {src / name} is missing: pass --data-root with the four MNIST IDX files")
        shutil.copyfile(src / name, dest / name)


def copy_photos(src: Path, dest: Path, per_split: dict[str, int]) -> int:
    """The first N photos of each class, per split, in their layout (sorted names: the same bundle every time)."""
    n = 0
    for split, count in per_split.items():
        for cls in ("cat", "dog"):
            folder = src / split / cls
            photos = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count]
            if len(photos) < count:
                raise SystemExit(f"gpu_bundle: {folder} has {len(photos)} photos, {count} wanted")
            (dest / split / cls).mkdir(parents=True, exist_ok=True)
            for p in photos:
                shutil.copyfile(p, dest / split / cls / p.name)
            n += len(photos)
    return n


def copy_weights(dest: Path, data_root: Path) -> Path:
    """The EfficientNet-Lite0 file where bench looks when its package is absent: <data root>/weights/<file>."""
    from bench.spec import TASKS
    from bench.weights.pretrained import locate

    src = TASKS["cats_vs_dogs"].pretrained
    assert src is not None
    found = locate(src, data_root)
    dest.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(found, dest / found.name))


def size_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def run_command(bundle: str) -> str:
    """What to type on the GPU machine, from the checkout's root (wheels into /tmp/site: the image's venv stays)."""
    return (f"python3 -m pip install -q --no-index --no-deps --target /tmp/site {bundle}/wheels/*.whl && "
            f"PYTHONPATH=/tmp/site python3 benchmarks/gpu_acceptance.py --data-root {bundle}/data --out /tmp/gpu")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_bundle", description=__doc__.split("\n\n")[0])
    p.add_argument("dir", nargs="?", type=Path, default=ROOT / "gpu_bundle")
    p.add_argument("--data-root", type=Path, default=Path("/tmp/data"),
                   help="has mnist/ (the 4 IDX .gz files) and cats_vs_dogs/{train,val}/{cat,dog} (default /tmp/data)")
    p.add_argument("--photos", default="40,25", help="photos per class: TRAIN,VAL (default 40,25)")
    p.add_argument("--no-wheels", action="store_true", help="skip the pip download (tests; a bundle made before)")
    args = p.parse_args(argv)
    train, val = (int(n) for n in args.photos.split(","))
    data = args.dir / "data"
    copy_mnist(args.data_root / "mnist", data / "mnist")
    n = copy_photos(args.data_root / "cats_vs_dogs", data / "cats_vs_dogs", {"train": train, "val": val})
    weights = copy_weights(data / "weights", args.data_root)
    if not args.no_wheels:
        subprocess.run(pip_download_cmd(args.dir / "wheels"), check=True)
    print(f"gpu_bundle: {args.dir}: MNIST, {n} photos, {weights.name}"
          f"{'' if args.no_wheels else ', wheels of ' + ', '.join(WHEELS)}: {size_mib(args.dir):.1f} MiB")
    try:
        shown = args.dir.resolve().relative_to(ROOT)
    except ValueError:
        shown = args.dir
    print(f"on the GPU machine, in the checkout: {run_command(str(shown))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
