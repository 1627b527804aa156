"""Which arithmetic `precision="auto"` uses: chosen by a short measurement where it runs.

CPU flags promise more than they deliver: on an AMD EPYC with AVX512-BF16 a bf16 copy of POCO
forecasts 512 units in 2.8 ms against 4.9 ms in fp32, while on an Intel Xeon with AMX-BF16 it is
no faster at 512 units and faster only from about 2,000 (issue #20). So where bf16 is native, the
first forecast of a shape class times both precisions on the real input (a few interleaved
passes, medians compared) and keeps bf16 only if it is clearly faster. The choice is cached in
memory and, when the two differ clearly, in a small JSON file per machine (CPU model, core count, torch version and threads),
keyed by the model's kind and size and by the number of units and windows, rounded to powers of two.
"""
from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

MEASURE_PASSES = 5  # timed passes per precision, after one warm-up each
MIN_GAIN = 0.9  # bf16 must take under 90% of fp32's time to be chosen
CLEAR_RATIOS = (0.8, 1.25)  # bf16/fp32 time ratios between these are kept for this process only, not on disk
_lock = threading.Lock()
_memory: dict[str, str] = {}


def cache_path() -> Path:
    """``$POCO_CACHE_DIR`` or ``$XDG_CACHE_HOME/poco-studio`` (``~/.cache/poco-studio``)."""
    root = os.environ.get("POCO_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "poco-studio"
    return Path(root) / "precision.json"


def machine_key(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = cpu_model()
    return f"{device.type}|{name}|{os.cpu_count()}|torch {torch.__version__}|threads {torch.get_num_threads()}"


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def shape_class(model: nn.Module, xs: list[torch.Tensor]) -> str:
    """The model's kind and size, and the work's size, each rounded to a power of two."""
    params = sum(p.numel() for p in model.parameters())
    units = sum(x.shape[-1] for x in xs)
    windows = sum(x.shape[0] for x in xs)

    def p2(n: int) -> int:
        return 1 << max(0, math.ceil(math.log2(max(n, 1))))

    return f"{type(model).__name__}|params~{p2(params)}|units~{p2(units)}|windows~{p2(windows)}"


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _store(path: Path, machine: str, shape: str, choice: str) -> None:
    """Best effort (a read-only home only costs a re-measurement next time), written atomically."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _load(path)
        data.setdefault(machine, {})[shape] = choice
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".precision.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


def _median_time(run: Callable[[], object], sync: Callable[[], None]) -> float:
    times = []
    for _ in range(MEASURE_PASSES):
        t0 = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def measured_choice(key: tuple[str, str], fp32: Callable[[], object], bf16: Callable[[], object],
                    device: torch.device) -> str:
    """``"bf16"`` or ``"fp32"`` for this machine and shape class: cached, else measured now."""
    machine, shape = key
    memo = f"{machine}||{shape}"
    with _lock:
        if memo in _memory:
            return _memory[memo]
        stored = _load(cache_path()).get(machine, {}).get(shape)
        if stored in ("fp32", "bf16"):
            _memory[memo] = stored
            return stored
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fp32(), bf16()  # warm-up: kernels, the bf16 copy, allocator
    sync()
    t32, t16 = _median_time(fp32, sync), _median_time(bf16, sync)
    choice = "bf16" if t16 < MIN_GAIN * t32 else "fp32"
    with _lock:
        _memory[memo] = choice
    if not CLEAR_RATIOS[0] < t16 / max(t32, 1e-12) < CLEAR_RATIOS[1]:
        _store(cache_path(), machine, shape, choice)  # a close call (or a busy machine) is measured again next run
    return choice


def forget() -> None:
    """Drop the in-memory choices (tests, or after changing threads)."""
    with _lock:
        _memory.clear()
