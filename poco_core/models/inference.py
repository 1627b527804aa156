"""Forecasting forward passes in the precision the hardware runs fastest.

Forecasts are latency-bound (one window per imaging frame in live mode), and on hardware with
native bfloat16 matmuls (CUDA GPUs with bf16, CPUs with AVX512-BF16 or AMX) a bf16 copy of the
model runs 2-3x faster than fp32. Measured on POCO (benchmarks/bench_models.py, docs/performance.md):
512 units on 2 cores, 4.9 -> 2.8 ms median; forecasts differ from fp32 by about 0.5% of their norm,
and the test score by under 0.001. ``precision="auto"`` considers bf16 only where it is native, and
then keeps it only where a short measurement on the real input shows it faster (`precision.py`:
on some CPUs with native bf16 it is no faster for small models); ``"fp32"`` gives the exact
computation. A call that repeats (same model, shapes and precision) runs a TorchScript trace of
the forward pass, which is exact and holds the GIL only to start (``traced.py``). Training and
evaluation tables do not go through here.
"""
from __future__ import annotations

import copy
import threading
import weakref

import torch
from torch import Tensor, nn

from poco_core.base.errors import PocoError
from poco_core.models.base import tensors_key
from poco_core.models import traced
from poco_core.models.precision import machine_key, measured_choice, shape_class

PRECISIONS = ("auto", "fp32", "bf16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 matmuls natively (faster than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)
    return False  # MPS: bf16 support depends on the OS version; stay exact


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """``auto`` -> bf16 where native, else fp32; ``fp32``/``bf16`` as asked. Without the model and
    its input this is what the hardware promises; `predict` refines ``auto`` by measurement."""
    if precision not in PRECISIONS:
        raise PocoError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    return _DTYPES[precision]


def model_device(model: nn.Module) -> torch.device:
    return next(iter(model.parameters()), torch.empty(0)).device


_copies: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (dtype, weights key, copy)
_copies_lock = threading.Lock()


def _weights_key(model: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is replaced or modified in place (training, finetuning)."""
    return tensors_key((*model.parameters(), *model.buffers()))


def inference_copy(model: nn.Module, dtype: torch.dtype, key: tuple | None = None) -> nn.Module:
    """``model`` itself for fp32; otherwise an eval-mode copy in ``dtype``, made once and
    remade only after the model's weights change (``key``: their `_weights_key`, if known)."""
    if dtype == torch.float32:
        return model
    key = _weights_key(model) if key is None else key
    with _copies_lock:
        cached = _copies.get(model)
        if cached is not None and cached[0] == dtype and cached[1] == key:
            return cached[2]
    low = copy.deepcopy(model).to(dtype).eval()
    for p in low.parameters():  # a copy for forward passes only: no gradients kept or tracked
        p.grad = None
        p.requires_grad_(False)
    with _copies_lock:
        _copies[model] = (dtype, key, low)
    return low


def _run(model: nn.Module, xs: list[Tensor], sessions: list[str], dtype: torch.dtype) -> list[Tensor]:
    device = model_device(model)
    # the weights' key is read once, only where a copy or a trace is kept against it
    key = _weights_key(model) if dtype != torch.float32 or getattr(model, "traceable", False) else None
    net = inference_copy(model, dtype, key)
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            return traced.run(net, [x.to(device=device, dtype=dtype) for x in xs], sessions, key)
    finally:
        net.train(was_training)


def predict(model: nn.Module, xs: list[Tensor], sessions: list[str], precision: str = "auto") -> list[Tensor]:
    """``model(xs, sessions)`` in eval mode without autograd, in the chosen precision; inputs
    are moved to the model's device and the forecasts come back as float32 on that device.
    ``auto`` on hardware with native bf16: whichever of bf16 and fp32 measured faster for this
    machine and shape class (the first call of a class measures; later ones read the cache)."""
    device = model_device(model)
    dtype = resolve_precision(precision, device)
    if precision == "auto" and dtype != torch.float32:
        key = (machine_key(device), shape_class(model, xs))
        choice = measured_choice(key, lambda: _run(model, xs, sessions, torch.float32),
                                 lambda: _run(model, xs, sessions, dtype), device)
        dtype = _DTYPES[choice]
    return [y.float() for y in _run(model, xs, sessions, dtype)]
