"""Pick the torch device: `auto` prefers CUDA, then Apple's MPS, then the CPU."""
from __future__ import annotations

import torch

from poco_core.base.errors import PocoError


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
