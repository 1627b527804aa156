"""Pick the torch device: `auto` prefers CUDA, then Apple's MPS, then the CPU."""
from __future__ import annotations

import torch

from .errors import PocoError


def available_devices() -> list[str]:
    """Every device name a user can choose here: auto, cpu, each CUDA device, mps."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    return names


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn `auto`, `cpu`, `cuda`, `cuda:1` or `mps` into a torch.device that exists here."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise PocoError(f"unknown device {name!r}; choose one of {available_devices()}") from exc
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise PocoError(f"device {name!r} is not available here; choose one of {available_devices()}")
    if dev.type == "mps" and "mps" not in available_devices():
        raise PocoError(f"device 'mps' is not available here; choose one of {available_devices()}")
    return dev


def keep_freed_memory(nbytes: int = 1 << 30) -> bool:
    """Ask glibc to serve every block from its heap and keep up to `nbytes` of freed memory there.

    By default glibc mmaps and unmaps large blocks (and trims the heap top), so each
    forward pass page-faults its large activations in again: ~25% of a 512-unit CPU forward,
    a third of a batched validation. Process-wide, so the engine's entry points (CLI, GUI job
    child, benchmarks) call it, not the library on import. Returns False where it does not apply."""
    import ctypes
    import ctypes.util

    libc_name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(libc_name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, nbytes))
