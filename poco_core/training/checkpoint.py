"""One-file checkpoints that survive crashes and load without unpickling arbitrary code.

Writes go to a hidden temp file in the target's folder, are fsynced, then ``os.replace``d over
the target, so a reader sees either the old file or the complete new one. Loading uses
``torch.load(weights_only=True)``; to make that possible every value is stored as a tensor,
str, number, bool, None, list, tuple or dict (numpy values are converted on save).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from poco_core.base.errors import CheckpointError

FORMAT_VERSION = 1
TEMP_SUFFIX = ".tmp"


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
    """Atomically write `payload` (format_version and package_version added) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = to_safe({**payload, "format_version": FORMAT_VERSION, "package_version": package_version()})
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600; lab-mates should read it as they read other files
        with os.fdopen(fd, "wb") as fh:
            torch.save(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: 0666 less the umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless no-op where directories can't be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    return data
