"""Loading arrays without copying them, and turning low-level failures into RecordingErrors."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from poco_core.base.errors import CorruptFile, RecordingError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def load_npy(path: Path, mmap: bool = True) -> np.ndarray:
    """A plain .npy array, memory-mapped read-only when possible (no pickles)."""
    if not path.is_file():
        raise RecordingError(path, "file is missing")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise CorruptFile(path, "holds Python objects, expected a numeric array") from exc
        raise CorruptFile(path, f"not a readable .npy array (truncated or corrupt?): {exc}") from exc
    except (OSError, EOFError) as exc:
        raise CorruptFile(path, f"not a readable .npy array (truncated or corrupt?): {exc}") from exc


# What a suite2p pickle (stat.npy, ops.npy, settings.npy...) may reference: numpy arrays, dtypes
# and scalars, builtin containers, dates. Anything else (os.system, eval, a class of some package) is
# refused before it runs, so a crafted file from a collaborator cannot execute code.
_PICKLE_ALLOWED = {
    *((m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")),
    *((m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("collections", "OrderedDict"),
    *(("datetime", n) for n in ("datetime", "date", "time", "timedelta", "timezone")),  # suite2p 1.x dates
    *(("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "complex", "bytearray", "slice")),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PICKLE_ALLOWED or (module.startswith("numpy") and name.endswith("Dtype")
                                                  and module.split(".")[-1] == "dtypes"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only numpy arrays and builtin "
                                     "containers are allowed in a suite2p file")


def load_pickled_npy(path: Path) -> Any:
    """A suite2p object array (stat.npy) or dict (ops.npy), unpickled with `_NumpyOnlyUnpickler`."""
    if not path.is_file():
        raise RecordingError(path, "file is missing")
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            _, _, dtype = read_header(fh)
            arr = _NumpyOnlyUnpickler(fh).load() if dtype.hasobject else None
        if arr is None:
            arr = np.load(path, allow_pickle=False)
    except pickle.UnpicklingError as exc:
        if "refused" in str(exc):
            raise CorruptFile(path, f"{exc}; this file may be crafted to run code -- poco will not open it") from exc
        raise CorruptFile(path, f"not a readable .npy file (truncated or corrupt?): {exc}") from exc
    except (ValueError, OSError, EOFError, AttributeError, ImportError, TypeError, IndexError, KeyError) as exc:
        raise CorruptFile(path, f"not a readable .npy file (truncated or corrupt?): {exc}") from exc
    if not isinstance(arr, np.ndarray):
        raise CorruptFile(path, f"holds a pickled {type(arr).__name__}, expected a numpy array")
    return arr.item() if arr.dtype == object and arr.ndim == 0 else arr


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an .npz (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CorruptFile(path, f"not a readable .npz archive (truncated or corrupt?): {exc}") from exc


def as_float32(a: Any) -> Any:
    """float32 view of an array; arrays of another dtype are converted, which copies them."""
    return a if a.dtype == np.float32 else np.asarray(a, dtype=np.float32)


def open_h5(path: Path, mode: str = "r") -> h5py.File:
    """Open an HDF5 file (SWMR-readable when it was written for it), or raise CorruptFile."""
    try:
        if mode == "r":
            try:
                return h5py.File(path, "r", libver="latest", swmr=True)
            except (OSError, ValueError):
                return h5py.File(path, "r")
        return h5py.File(path, mode, libver="latest")
    except (OSError, ValueError) as exc:
        raise CorruptFile(path, f"not a readable HDF5 file (truncated or corrupt?): {exc}") from exc


class LazyH5Array:
    """A (T, N) float32 view of an HDF5 dataset that reads only the slices asked for.

    Holds the file path and dataset name (so it pickles into worker processes) and reopens the
    file on first use. ``transpose=True`` serves a dataset stored ROIs-first as frames x ROIs.
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, path: str | Path, name: str, transpose: bool = False):
        self.path, self.name, self.transpose = str(path), name, transpose
        self._dataset: h5py.Dataset | None = None
        shape = self._ds().shape
        if len(shape) != 2:
            raise CorruptFile(path, f"dataset {name} has shape {shape}, expected 2-D")

    def _ds(self) -> h5py.Dataset:
        if self._dataset is None or not self._dataset.id.valid:
            self._dataset = open_h5(Path(self.path))[self.name]
        return self._dataset

    @property
    def shape(self) -> tuple[int, int]:
        ds = self._ds()
        if hasattr(ds, "refresh") and ds.file.swmr_mode:
            ds.refresh()  # a live writer may have appended frames
        return ds.shape[::-1] if self.transpose else ds.shape

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (2 - len(key))
        if self.transpose:
            key = key[::-1]
        # h5py needs increasing fancy indices: read sorted unique rows, then undo the order.
        fixed, undo = [], []
        for k in key:
            if isinstance(k, (list, np.ndarray)):
                idx = np.asarray(k)
                if idx.dtype == bool:
                    idx = np.flatnonzero(idx)
                uniq, inverse = np.unique(idx, return_inverse=True)
                fixed.append(uniq)
                undo.append(inverse)
            else:
                fixed.append(k)
                undo.append(None)
        try:
            out = self._ds()[tuple(fixed)]
        except OSError as exc:  # e.g. a fletcher32 checksum mismatch: flipped bytes on disk
            raise CorruptFile(self.path, f"cannot read {self.name} (corrupt: {exc})") from exc
        for axis, inverse in enumerate(undo):
            if inverse is not None:
                axis -= sum(1 for k in fixed[:axis] if np.isscalar(k))
                out = np.take(out, inverse, axis=axis)
        out = np.asarray(out, dtype=np.float32)
        return out.T if self.transpose and out.ndim == 2 else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:, :]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __getstate__(self) -> dict:
        return {"path": self.path, "name": self.name, "transpose": self.transpose}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _dataset=None)

    def __repr__(self) -> str:
        return f"LazyH5Array({self.path!r}, {self.name!r}, shape={self.shape})"


def h5_traces(path: Path, ds: h5py.Dataset, transpose: bool, lazy: bool | None, lazy_above_mb: float = 256):
    """Traces from an HDF5 dataset: in memory when small, else a LazyH5Array (``lazy`` forces either)."""
    if lazy is None:
        lazy = ds.size * 4 > lazy_above_mb * 2**20
    if lazy:
        return LazyH5Array(path, ds.name, transpose=transpose)
    try:
        data = np.asarray(ds[()], dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise CorruptFile(path, f"cannot read dataset {ds.name} (truncated or corrupt?): {exc}") from exc
    return data.T if transpose else data
