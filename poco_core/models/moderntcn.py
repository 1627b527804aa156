"""A small ModernTCN (Luo & Wang 2024): patch embedding, large+small depth-wise temporal
convolutions, channel FFN, and cross-unit mixing, then a linear readout per unit."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from poco_core.models.base import BaseConfig, BaseForecaster, SessionSpec, instance_norm
from poco_core.models.mixing import UnitMixer
from poco_core.models.registry import register


@dataclass
class ModernTCNConfig(BaseConfig):
    patch_len: int = 4
    patch_stride: int = 2
    d_model: int = 64
    large_kernel: int = 17
    small_kernel: int = 5
    ffn_ratio: int = 2
    unit_hidden: int = 64  # cross-unit mixing hidden size (per session)
    n_blocks: int = 1
    dropout: float = 0.1


class TCNBlock(nn.Module):
    """Depth-wise temporal conv (large + small kernel, as after structural re-parameterisation)
    followed by a per-unit channel FFN; cross-unit mixing is applied by the model per session."""

    def __init__(self, d: int, large: int, small: int, ratio: int, dropout: float):
        super().__init__()
        self.large = nn.Conv1d(d, d, large, padding=large // 2, groups=d)
        self.small = nn.Conv1d(d, d, small, padding=small // 2, groups=d)
        self.norm = nn.BatchNorm1d(d)
        self.ffn = nn.Sequential(
            nn.Linear(d, d * ratio), nn.GELU(), nn.Dropout(dropout), nn.Linear(d * ratio, d), nn.Dropout(dropout)
        )

    def forward(self, x: Tensor) -> Tensor:
        """x (M, d, K) for M = batch * units."""
        h = self.norm(self.large(x) + self.small(x))
        return x + self.ffn(h.transpose(1, 2)).transpose(1, 2)


@register("moderntcn")
class ModernTCN(BaseForecaster):
    config_class = ModernTCNConfig
    config: ModernTCNConfig

    def _build(self, sessions: list[SessionSpec]) -> None:
        c = self.config
        if c.patch_len > c.context:
            raise ValueError(f"patch_len {c.patch_len} longer than context {c.context}")
        self.n_patches = (c.context - c.patch_len) // c.patch_stride + 1
        self.embed = nn.Linear(c.patch_len, c.d_model)
        self.blocks = nn.ModuleList(
            TCNBlock(c.d_model, c.large_kernel, c.small_kernel, c.ffn_ratio, c.dropout) for _ in range(c.n_blocks)
        )
        self.head = nn.Linear(c.d_model * self.n_patches, c.horizon)

    def _init_session(self, key: str, spec: SessionSpec) -> None:
        c = self.config
        self.per_session[key] = nn.ModuleList(
            UnitMixer(spec.n_units, c.unit_hidden, c.dropout) for _ in range(c.n_blocks)
        )

    def forward(self, xs: list[Tensor], sessions: list[str]) -> list[Tensor]:
        self._check(xs, sessions)
        return [self._one(x, self.session_key(s)) for x, s in zip(xs, sessions)]

    def _one(self, x: Tensor, key: str) -> Tensor:
        c = self.config
        b, _, n = x.shape
        x, mean, std = instance_norm(x, dim=1)
        patches = x.transpose(1, 2).unfold(-1, c.patch_len, c.patch_stride)  # (B, N, K, patch)
        h = self.embed(patches).reshape(b * n, self.n_patches, -1).transpose(1, 2)  # (BN, d, K)
        for block, mix in zip(self.blocks, self.per_session[key]):  # type: ignore[arg-type]
            h = block(h)
            u = h.reshape(b, n, -1).transpose(1, 2)  # (B, d*K, N): mix across units
            h = h + mix(u).transpose(1, 2).reshape(b * n, *h.shape[1:])
        y = self.head(F.gelu(h).flatten(1)).reshape(b, n, -1).transpose(1, 2)
        return y * std + mean
