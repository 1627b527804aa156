"""Rotary time embedding (as in POYO): rotate feature pairs by angle 2*pi*t/period.

Half of the head dimensions rotate (head_dim/4 pairs, periods log-spaced over
[t_max/1000, t_max]); the other half pass through, carrying time-invariant content.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def default_t_max(context: int) -> float:
    """The paper's settings: 50 for C = 4, 100 for C = 48, 400 for C = 256 (step function between)."""
    if context < 16:
        return 50.0
    if context < 128:
        return 100.0
    return 400.0


class RotaryTime(nn.Module):
    """Turns timestamps into (cos, sin) of shape (..., head_dim // 4); no parameters."""

    def __init__(self, head_dim: int, t_max: float, t_min: float | None = None):
        super().__init__()
        if head_dim % 4:
            raise ValueError(f"rotary head_dim must be a multiple of 4, got {head_dim}")
        t_min = t_max / 1000 if t_min is None else t_min
        periods = torch.logspace(math.log10(t_min), math.log10(t_max), head_dim // 4, dtype=torch.float64)
        self.register_buffer("freq", (2 * math.pi / periods).float(), persistent=False)

    def forward(self, t: Tensor) -> tuple[Tensor, Tensor]:
        ang = t.to(self.freq.dtype)[..., None] * self.freq
        return ang.cos(), ang.sin()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs (x[i], x[i + n]) for i < n = cos.shape[-1]; dims >= 2n are unchanged.
    Pass ``-sin`` to counter-rotate."""
    n = cos.shape[-1]
    x1, x2, rest = x[..., :n], x[..., n : 2 * n], x[..., 2 * n :]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest), dim=-1)
