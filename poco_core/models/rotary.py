"""Rotary time embedding (as in POYO): rotate feature pairs by angle 2*pi*t/period.

Half of the head dimensions rotate (n = head_dim/4 pairs); the other half pass through,
carrying time-invariant content. Two conventions, chosen by the model config's ``rotary``:

- ``"reference"`` (the authors' code, the default): periods t_min * (t_max/t_min)^(i/n),
  i = 0..n-1 with t_min = t_max/1000 (so t_max itself is not among them; longest 64.9 for
  t_max = 100, head_dim 64), and pair i is the adjacent dims (2i, 2i+1) of dims [0, 2n).
- ``"legacy"`` (checkpoints written before v0.2): periods log-spaced over [t_min, t_max]
  inclusive, and pair i is (i, i+n). Pairing is only a permutation of the q/k/v projection
  rows, but periods differ, so the two are different functions of the same weights.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

ROTARY_CONVENTIONS = ("reference", "legacy")


def default_t_max(context: int) -> float:
    """The paper's settings: 50 for C = 4, 100 for C = 48, 400 for C = 256 (step function between)."""
    if context < 16:
        return 50.0
    if context < 128:
        return 100.0
    return 400.0


def rotary_periods(head_dim: int, t_max: float, convention: str = "reference") -> Tensor:
    """The head_dim // 4 periods (float64), shortest first."""
    if head_dim % 4:
        raise ValueError(f"rotary head_dim must be a multiple of 4, got {head_dim}")
    if convention not in ROTARY_CONVENTIONS:
        raise ValueError(f"rotary convention must be one of {ROTARY_CONVENTIONS}, got {convention!r}")
    n, t_min = head_dim // 4, t_max / 1000
    if convention == "legacy":
        return torch.logspace(math.log10(t_min), math.log10(t_max), n, dtype=torch.float64)
    return t_min * (t_max / t_min) ** (torch.arange(n, dtype=torch.float64) / n)


def rotary_angles(t: Tensor, head_dim: int, t_max: float, convention: str = "reference") -> tuple[Tensor, Tensor]:
    """(cos, sin) of shape (*t.shape, head_dim // 4) for timestamps t."""
    ang = t.to(torch.float64)[..., None] * (2 * math.pi / rotary_periods(head_dim, t_max, convention))
    return ang.cos().float(), ang.sin().float()


def rotate(x: Tensor, cos: Tensor, sin: Tensor, convention: str = "reference") -> Tensor:
    """Rotate the n = cos.shape[-1] pairs of the first 2n dims of x; dims >= 2n are unchanged.
    Pair i is (2i, 2i+1) for ``"reference"``, (i, i+n) for ``"legacy"``. Pass ``-sin`` to
    counter-rotate."""
    n = cos.shape[-1]
    head, rest = x[..., : 2 * n], x[..., 2 * n :]
    if convention == "legacy":
        x1, x2 = head[..., :n], head[..., n:]
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest), dim=-1)
    pairs = head.unflatten(-1, (n, 2))
    x1, x2 = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    return torch.cat((rotated, rest), dim=-1)
