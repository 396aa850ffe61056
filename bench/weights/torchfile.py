"""Reads a PyTorch state-dict file into NumPy without torch and without running pickled code.

Both on-disk formats are supported: the zip archive (torch >= 1.6) and the legacy stream
(magic, protocol, sys-info, object, storage keys, raw storages). The unpickler resolves only
an allow-list of globals (an OrderedDict, the tensor-rebuild function, typed storage markers),
like torch.load(weights_only=True); anything else is refused with PickleRefused.
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class PickleRefused(pickle.UnpicklingError):
    """The file asks for a global outside the allow-list: it is not a plain state dict."""


@dataclass
class _Storage:
    key: str
    dtype: Any
    numel: int
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise pickle.UnpicklingError(f"storage {self.storage.key} has no data")
        if not self.size:
            return data[self.offset : self.offset + 1].reshape(()).copy()
        item = data.itemsize
        span = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1
        if min(self.size) > 0 and span > len(data):
            raise pickle.UnpicklingError(f"tensor view runs past storage {self.storage.key}")
        view = np.lib.stride_tricks.as_strided(data[self.offset :], self.size, [s * item for s in self.stride])
        return np.array(view, copy=True)


def _rebuild_tensor_v2(storage: _Storage, offset: int, size: tuple, stride: tuple, *_: Any) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = _STORAGE_DTYPES[name]


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh: BinaryIO, storages: dict[str, _Storage]) -> None:
        super().__init__(fh)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise PickleRefused(f"refusing to load {module}.{name}: not part of a plain state dict")

    def persistent_load(self, pid: Any) -> _Storage:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage" or not isinstance(pid[1], _StorageType):
            raise PickleRefused(f"unexpected persistent id {pid!r:.80}")
        key = str(pid[2])
        if key not in self.storages:
            self.storages[key] = _Storage(key, pid[1].dtype, int(pid[4]))
        return self.storages[key]


def _materialize(obj: Any) -> Any:
    if isinstance(obj, _TensorRef):
        return obj.materialize()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialize(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise pickle.UnpicklingError("zip file without exactly one data.pkl: not a PyTorch file")
        prefix = pkl[0][: -len("data.pkl")]
        storages: dict[str, _Storage] = {}
        obj = _Unpickler(io.BytesIO(z.read(pkl[0])), storages).load()
        for key, st in storages.items():
            raw = z.read(f"{prefix}data/{key}")
            st.data = np.frombuffer(raw, dtype=np.dtype(st.dtype).newbyteorder("<"), count=st.numel)
    return obj


def _load_legacy(fh: BinaryIO) -> Any:
    def plain() -> Any:
        return _Unpickler(fh, {}).load()  # header pickles hold only ints and dicts

    if plain() != LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a PyTorch file (bad magic number)")
    if plain() != 1001:
        raise pickle.UnpicklingError("unsupported legacy PyTorch protocol version")
    plain()  # sys info: endianness and type sizes; little-endian is assumed and checked below
    storages: dict[str, _Storage] = {}
    obj = _Unpickler(fh, storages).load()
    keys = plain()
    for key in keys:
        st = storages[str(key)]
        (numel,) = struct.unpack("<q", fh.read(8))
        dtype = np.dtype(st.dtype).newbyteorder("<")
        raw = fh.read(numel * dtype.itemsize)
        if numel != st.numel or len(raw) != numel * dtype.itemsize:
            raise pickle.UnpicklingError(f"storage {key}: truncated or inconsistent file")
        st.data = np.frombuffer(raw, dtype=dtype)
    if fh.read(1):
        raise pickle.UnpicklingError("trailing bytes after the last storage")
    return obj


def load_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The file's tensors as NumPy arrays, keyed as in the state dict."""
    if zipfile.is_zipfile(path):
        obj = _load_zip(path)
    else:
        with open(path, "rb") as fh:
            obj = _load_legacy(fh)
    obj = _materialize(obj)
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise pickle.UnpicklingError("the file holds no flat state dict of tensors")
    return dict(obj)
