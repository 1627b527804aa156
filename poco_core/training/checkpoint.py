"""One-file checkpoints that survive crashes and load without unpickling arbitrary code.

Writes go to a hidden temp file in the target's folder, are fsynced, then ``os.replace``d over
the target, so a reader sees either the old file or the complete new one. Loading uses
``torch.load(weights_only=True)``; to make that possible every value is stored as a tensor,
str, number, bool, None, list, tuple or dict (numpy values are converted on save).
Each checkpoint stores a SHA-256 of its content (``content_sha256``), verified on load, so
flipped bytes are an error instead of silently different weights.
"""
from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from poco_core.base.errors import CheckpointError
from poco_core.base.outputs import atomic_path

FORMAT_VERSION = 1
HASH_KEY = "content_sha256"


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("poco-napari")
    except Exception:  # not installed (e.g. running from a source tree)
        return "0+unknown"


def to_safe(value: Any) -> Any:
    """Recursively convert numpy arrays/scalars and paths to types `weights_only` loading accepts."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "US":
            return value.astype(str).tolist()
        if value.dtype.kind == "O":
            return [to_safe(v) for v in value.tolist()]
        return torch.from_numpy(np.ascontiguousarray(value)).clone()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k) if isinstance(k, Path) else k: to_safe(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(to_safe(v) for v in value)
    if isinstance(value, list):
        return [to_safe(v) for v in value]
    return value


def save_checkpoint(path: str | Path, payload: dict) -> Path:
    """Atomically write `payload` (format_version, package_version and its content hash added)."""
    path = Path(path)
    data = to_safe({**payload, "format_version": FORMAT_VERSION, "package_version": package_version()})
    data.pop(HASH_KEY, None)
    data[HASH_KEY] = content_hash(data)
    buf = io.BytesIO()  # serialised first: a full disk is then an OSError from write(), not a torch error
    torch.save(data, buf)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(buf.getbuffer())
    return path


def content_hash(value: Any) -> str:
    """SHA-256 over a checkpoint's values (keys sorted, tensors by dtype, shape and bytes)."""
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        h.update(f"D{len(value)}".encode())
        for k in sorted(value, key=lambda k: (type(k).__name__, str(k))):
            h.update(f"K{type(k).__name__}:{k}".encode())
            _feed(h, value[k])
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}".encode())
        for v in value:
            _feed(h, v)
    elif isinstance(value, float):
        h.update(f"F{value!r}".encode())
    else:
        h.update(f"{type(value).__name__}:{value!r}".encode())


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint onto the CPU; CheckpointError if missing, corrupt or from another format."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint file there")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable POCO checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict) or "format_version" not in data:
        raise CheckpointError(f"{path}: not a POCO checkpoint (no format_version)")
    version = data["format_version"]
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        hint = "upgrade poco-napari to read it" if newer else "re-train or convert it with the version that wrote it"
        raise CheckpointError(
            f"{path}: checkpoint format {version!r} (written by poco {data.get('package_version', '?')}); "
            f"this version reads format {FORMAT_VERSION}; {hint}"
        )
    stored = data.pop(HASH_KEY, None)  # checkpoints written before hashes load unchecked
    if stored is not None and stored != content_hash(data):
        raise CheckpointError(f"{path}: the checkpoint is corrupt (its content does not match its stored "
                              "checksum); use another copy or re-train")
    return data


def check_finite_weights(state_dict: dict, path: str | Path) -> None:
    """Refuse weights holding NaN or Inf (they would give NaN forecasts and scores)."""
    bad = [k for k, v in state_dict.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
           and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path}: weights {bad[:4]} hold NaN or Inf values; this checkpoint cannot forecast "
                              "-- use another one or re-train")


def check_positive(values: Any, what: str, path: str | Path) -> None:
    """Refuse a normaliser scale that is not a finite positive number everywhere."""
    arr = np.asarray(values.numpy() if isinstance(values, torch.Tensor) else values, dtype=float)
    if arr.size and not (np.isfinite(arr).all() and (arr > 0).all() and math.isfinite(float(arr.sum()))):
        raise CheckpointError(f"{path}: {what} has zero, negative or non-finite values; the checkpoint's "
                              "normalisation is corrupt -- use another copy or re-train")
