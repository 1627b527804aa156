"""Forecasting passes traced once into TorchScript, which runs them without holding the GIL.

In live mode three Python threads share one interpreter (reading frames, forecasting, drawing).
An eager forward of POCO is a few hundred small tensor ops, and each one retakes the GIL: beside a
busy Python thread a 12 ms forecast of 1,000 units took 115 ms (docs/performance.md, "GIL-free
forecasts"). A traced graph runs in C++ with the GIL released (12 ms beside the same thread) and
is 10-20% faster alone. A trace is made on the ``TRACE_AFTER``-th call with the same model,
sessions, input shapes and dtype (one-off calls never pay for tracing) on at most ``MAX_PAIRS``
(window, unit) pairs, checked against the eager output of that call, and remade after the
weights change. Only models that declare ``traceable`` (no control flow on tensor values) are
traced; where tracing fails or disagrees, that call stays eager.
"""
from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from poco_core.models.base import tensors_key

TRACE_AFTER = 2  # eager calls with one key before the trace is made (on the next one)
MAX_KEYS = 4  # traces kept per model (least recently used dropped)
MAX_PAIRS = 1 << 16  # (window, unit) pairs per call at most: above this each op is long enough that
# neither the GIL nor per-op overhead matters, and a traced pass peaks higher (80,000 units: 1.5 GB, eager 0.8)
RTOL = {torch.float32: 1e-5, torch.bfloat16: 2e-2}  # trace vs eager, relative to the largest output

_lock = threading.Lock()


@dataclass
class _Entry:
    weights: tuple
    calls: int = 0
    traced: torch.jit.ScriptModule | None = None
    failed: bool = False


class _Traces(OrderedDict):
    """A model's traces, kept on the model (they hold it, so a side table would keep it alive);
    a copy of the model (its bf16 copy, say) starts without them."""

    def __deepcopy__(self, memo: dict) -> "_Traces":
        return _Traces()


def _table(net: nn.Module) -> _Traces:
    return net.__dict__.setdefault("_traces", _Traces())


class _Forward(nn.Module):
    """``net(xs, sessions)`` with the sessions fixed and tensors in and out (what tracing needs)."""

    def __init__(self, net: nn.Module, sessions: list[str]):
        super().__init__()
        self.net, self.sessions = net, list(sessions)

    def forward(self, *xs: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.net(list(xs), self.sessions))


def _trace(net: nn.Module, xs: list[Tensor], sessions: list[str], eager: list[Tensor]) -> torch.jit.ScriptModule | None:
    """A trace whose output on ``xs`` matches ``eager``; None if tracing fails or it does not match."""
    try:
        with warnings.catch_warnings():
            # TorchScript is deprecated in favour of torch.compile (which needs a compiler and
            # seconds to minutes per shape); shape checks in forward are recorded as constants,
            # which is right because every input shape gets its own trace
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(_Forward(net, sessions).eval(), tuple(xs), check_trace=False)
            out = traced(*xs)
    except Exception:  # noqa: BLE001  any failure: this key stays eager
        return None
    for a, b in zip(out, eager):
        scale = float(b.abs().max()) if b.numel() else 0.0
        if a.shape != b.shape or float((a - b).abs().max() if b.numel() else 0.0) > RTOL[b.dtype] * max(scale, 1e-6):
            return None
    return traced


def run(net: nn.Module, xs: list[Tensor], sessions: list[str], weights: tuple | None = None) -> list[Tensor]:
    """``net(xs, sessions)`` (eval mode, inside inference mode), traced once the call repeats.
    ``weights``: a key that changes with the weights (default: `tensors_key` of them all; a
    caller whose ``net`` is a copy of another model passes that model's)."""
    if (not getattr(net, "traceable", False) or net.training or xs[0].dtype not in RTOL
            or sum(x.shape[0] * x.shape[-1] for x in xs) > MAX_PAIRS):
        return net(xs, sessions)
    key = (tuple(sessions), tuple(tuple(x.shape) for x in xs), xs[0].dtype, xs[0].device)
    if weights is None:
        weights = tensors_key((*net.parameters(), *net.buffers()))
    with _lock:
        table = _table(net)
        entry = table.get(key)
        if entry is None or entry.weights != weights:
            entry = table[key] = _Entry(weights)
        table.move_to_end(key)
        while len(table) > MAX_KEYS:
            table.popitem(last=False)
        entry.calls += 1
        traced, make = entry.traced, not entry.failed and entry.traced is None and entry.calls > TRACE_AFTER
    if traced is not None:
        return list(traced(*xs))
    out = net(xs, sessions)
    if make:
        made = _trace(net, xs, sessions, out)
        with _lock:
            entry.traced, entry.failed = made, made is None
    return out


def traces(net: nn.Module) -> list[Callable]:
    """The traces held for ``net`` (tests and diagnostics)."""
    with _lock:
        return [e.traced for e in _table(net).values() if e.traced is not None]
