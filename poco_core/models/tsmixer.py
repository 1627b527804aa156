"""TSMixer (Chen et al. 2023): alternating time-mixing and feature (unit)-mixing MLP blocks."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from poco_core.models.base import BaseConfig, BaseForecaster, SessionSpec, instance_norm
from poco_core.models.mixing import UnitMixer
from poco_core.models.registry import register


@dataclass
class TSMixerConfig(BaseConfig):
    n_blocks: int = 2
    ff_dim: int = 64  # feature-mixer hidden size
    dropout: float = 0.1


@register("tsmixer")
class TSMixer(BaseForecaster):
    """Time mixers and the output projection are shared; the feature mixers act across a
    session's units so each session has its own (parameter group "embeddings").
    Normalisation is over (time, unit) without affine so no weight depends on N."""

    config_class = TSMixerConfig
    config: TSMixerConfig

    def _build(self, sessions: list[SessionSpec]) -> None:
        c = self.config
        self.time_mix = nn.ModuleList(nn.Linear(c.context, c.context) for _ in range(c.n_blocks))
        self.drop = nn.Dropout(c.dropout)
        self.proj = nn.Linear(c.context, c.horizon)

    def _init_session(self, key: str, spec: SessionSpec) -> None:
        c = self.config
        self.per_session[key] = nn.ModuleList(
            UnitMixer(spec.n_units, c.ff_dim, c.dropout) for _ in range(c.n_blocks)
        )

    def forward(self, xs: list[Tensor], sessions: list[str]) -> list[Tensor]:
        self._check(xs, sessions)
        return [self._one(x, self.session_key(s)) for x, s in zip(xs, sessions)]

    def _one(self, x: Tensor, key: str) -> Tensor:
        x, mean, std = instance_norm(x, dim=1)  # (B, C, N)
        for time_mix, unit_mix in zip(self.time_mix, self.per_session[key]):  # type: ignore[arg-type]
            h = F.layer_norm(x, x.shape[-2:]).transpose(1, 2)
            x = x + self.drop(F.relu(time_mix(h))).transpose(1, 2)
            x = x + unit_mix(F.layer_norm(x, x.shape[-2:]))
        y = self.proj(x.transpose(1, 2)).transpose(1, 2)
        return y * std + mean
