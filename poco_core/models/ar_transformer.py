"""Autoregressive Transformer: per-session input/output projections around a shared causal backbone."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from poco_core.models.base import BaseConfig, SessionSpec, StepwiseForecaster
from poco_core.models.registry import register


@dataclass
class ARTransformerConfig(BaseConfig):
    d_model: int = 512
    layers: int = 4
    heads: int = 8
    ff_mult: int = 4
    dropout: float = 0.1


class SessionIO(nn.Module):
    """A session's population-vector <-> d_model maps."""

    def __init__(self, n_units: int, d_model: int):
        super().__init__()
        self.inp = nn.Linear(n_units, d_model)
        self.out = nn.Linear(d_model, n_units)


@register("ar_transformer")
class ARTransformer(StepwiseForecaster):
    """Each time step's population vector is one token; trained with teacher forcing on all
    C+P-1 next-step targets, forecasts by appending its own predictions P times."""

    config_class = ARTransformerConfig
    config: ARTransformerConfig

    def _build(self, sessions: list[SessionSpec]) -> None:
        c = self.config
        layer = nn.TransformerEncoderLayer(
            c.d_model, c.heads, c.d_model * c.ff_mult, c.dropout, batch_first=True, norm_first=True
        )
        self.backbone = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.pos = nn.Parameter(torch.randn(c.context + c.horizon, c.d_model) * 0.02)
        self.norm = nn.LayerNorm(c.d_model)

    def _init_session(self, key: str, spec: SessionSpec) -> None:
        self.per_session[key] = SessionIO(spec.n_units, self.config.d_model)

    def _next(self, x: Tensor, key: str) -> Tensor:
        """(B, T, N) -> (B, T, N): prediction of step t+1 from steps <= t."""
        io: SessionIO = self.per_session[key]  # type: ignore[assignment]
        t = x.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(t, device=x.device, dtype=x.dtype)
        h = self.backbone(io.inp(x) + self.pos[:t], mask=mask, is_causal=True)
        return io.out(self.norm(h))

    def step_predictions(self, window: Tensor, key: str) -> Tensor:
        return self._next(window[:, :-1], key)

    def rollout(self, x: Tensor, key: str) -> Tensor:
        for _ in range(self.config.horizon):
            x = torch.cat((x, self._next(x, key)[:, -1:]), dim=1)
        return x[:, -self.config.horizon :]
