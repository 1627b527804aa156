"""Transformer pieces CalM's quantizer and dual-axis transformer share: standard RoPE
(base 1e4, rotating feature pairs (i, i + d/2)), self-attention with an optional key/value
cache (so a causal rollout attends to earlier steps without recomputing them) and a pre-LN block."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


KV = tuple[Tensor, Tensor]  # cached keys and values, each (S, heads, T, head_dim)


def rope(x: Tensor, base: float = 1e4, offset: int = 0) -> Tensor:
    """Rotate (..., heads, T, head_dim) by position along T, the first at `offset` (RoPE, Su et al.)."""
    t, d = x.shape[-2], x.shape[-1]
    half = d // 2
    freq = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    ang = torch.arange(offset, offset + t, device=x.device, dtype=torch.float32)[:, None] * freq
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half : 2 * half]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos, x[..., 2 * half :]), dim=-1)


class SelfAttention(nn.Module):
    """Multi-head self-attention over dim -2 of (S, T, d); optionally causal, optionally RoPE on T."""

    def __init__(self, d: int, heads: int, dropout: float = 0.0, causal: bool = False, rotary: bool = False):
        super().__init__()
        if d % heads:
            raise ValueError(f"width {d} is not a multiple of {heads} heads")
        self.heads, self.causal, self.rotary, self.dropout = heads, causal, rotary, dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def _project(self, x: Tensor, offset: int) -> tuple[Tensor, Tensor, Tensor]:
        s, t, d = x.shape
        q, k, v = self.qkv(x).view(s, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if self.rotary:
            q, k = rope(q, offset=offset), rope(k, offset=offset)
        return q, k, v

    def _merge(self, y: Tensor) -> Tensor:
        s, _, t, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(s, t, -1))

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self._project(x, 0)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=self.causal)
        return self._merge(y)

    def extend(self, x: Tensor, past: KV | None) -> tuple[Tensor, KV]:
        """Attention of new positions x (S, T_new, d) to the `past` keys/values and their own
        (causal: position i sees the past and new positions <= i); returns the output and the
        extended cache. With no past it equals `forward` in eval mode."""
        offset = 0 if past is None else past[0].shape[-2]
        q, k, v = self._project(x, offset)
        if past is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
            return self._merge(y), (k, v)
        k, v = torch.cat((past[0], k), dim=-2), torch.cat((past[1], v), dim=-2)
        mask = None
        if self.causal and x.shape[1] > 1:  # a single new position sees everything cached
            new = torch.arange(offset, offset + x.shape[1], device=x.device)
            mask = torch.arange(k.shape[-2], device=x.device)[None, :] <= new[:, None]
        return self._merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask)), (k, v)


def feed_forward(d: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d))


class Block(nn.Module):
    """Pre-LN Transformer layer along dim -2: x += Attn(LN x); x += FFN(LN x)."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float, causal: bool):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = SelfAttention(d, heads, dropout, causal=causal, rotary=True)
        self.ff = feed_forward(d, ff, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.drop(self.ff(self.ln2(x)))
