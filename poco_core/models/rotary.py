"""Rotary time embedding (as in POYO): rotate feature pairs by angle 2*pi*t/period.

Half of the head dimensions rotate (head_dim/4 pairs, periods log-spaced over
[t_max/1000, t_max]); the other half pass through, carrying time-invariant content.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def default_t_max(context: int) -> float:
    """The paper's settings: 50 for C = 4, 100 for C = 48, 400 for C = 256 (step function between)."""
    if context < 16:
        return 50.0
    if context < 128:
        return 100.0
    return 400.0


def rotary_angles(t: Tensor, head_dim: int, t_max: float) -> tuple[Tensor, Tensor]:
    """(cos, sin) of shape (*t.shape, head_dim // 4) for timestamps t; periods are log-spaced
    over [t_max / 1000, t_max]."""
    if head_dim % 4:
        raise ValueError(f"rotary head_dim must be a multiple of 4, got {head_dim}")
    periods = torch.logspace(math.log10(t_max / 1000), math.log10(t_max), head_dim // 4, dtype=torch.float64)
    ang = t.to(torch.float64)[..., None] * (2 * math.pi / periods)
    return ang.cos().float(), ang.sin().float()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs (x[i], x[i + n]) for i < n = cos.shape[-1]; dims >= 2n are unchanged.
    Pass ``-sin`` to counter-rotate."""
    n = cos.shape[-1]
    x1, x2, rest = x[..., :n], x[..., n : 2 * n], x[..., 2 * n :]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest), dim=-1)
