"""Latent PLRNN (Durstewitz lab): z_t = A z_{t-1} + W relu(z_{t-1}) + h, shared across sessions;
each session maps observations in with its own W_in and out with W_in's pseudo-inverse."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from poco_core.models.base import BaseConfig, SessionSpec, StepwiseForecaster
from poco_core.models.registry import register


@dataclass
class PLRNNConfig(BaseConfig):
    latent: int = 512
    stf_interval: int = 4  # sparse teacher forcing: re-infer the latent state every k context steps


@register("plrnn")
class LatentPLRNN(StepwiseForecaster):
    """Forecast: z_C = W_in x_C + b_in, evolve P steps, x = pinv(W_in)(z - b_in).
    Training starts from x_1 and runs C+P-1 steps with sparse teacher forcing inside the
    context (always at step C, matching inference), free-running over the last P."""

    config_class = PLRNNConfig
    config: PLRNNConfig

    def _build(self, sessions: list[SessionSpec]) -> None:
        d = self.config.latent
        self.a = nn.Parameter(torch.full((d,), 0.9))  # diagonal self-connections
        self.w = nn.Parameter(torch.randn(d, d) * 0.01 / d**0.5)  # off-diagonal (diag masked)
        self.h = nn.Parameter(torch.zeros(d))
        self.register_buffer("off_diag", 1 - torch.eye(d), persistent=False)

    def _init_session(self, key: str, spec: SessionSpec) -> None:
        self.per_session[key] = nn.Linear(spec.n_units, self.config.latent)

    def _step(self, z: Tensor) -> Tensor:
        return self.a * z + F.linear(F.relu(z), self.w * self.off_diag) + self.h

    def _maps(self, key: str) -> tuple[nn.Linear, Tensor]:
        enc: nn.Linear = self.per_session[key]  # type: ignore[assignment]
        return enc, torch.linalg.pinv(enc.weight)  # (N, d)

    def _run(self, x: Tensor, key: str, steps: int, forced: Tensor | None) -> Tensor:
        """Start from x[:, 0]; evolve ``steps`` steps, re-inferring z from x[:, t] where forced[t]."""
        enc, dec = self._maps(key)
        z = enc(x[:, 0])
        outs = []
        for t in range(1, steps + 1):
            z = self._step(z)
            outs.append(F.linear(z - enc.bias, dec))
            if forced is not None and forced[t]:
                z = enc(x[:, t])
        return torch.stack(outs, dim=1)

    def rollout(self, x: Tensor, key: str) -> Tensor:
        return self._run(x[:, -1:], key, self.config.horizon, None)

    def step_predictions(self, window: Tensor, key: str) -> Tensor:
        c, p, k = self.config.context, self.config.horizon, self.config.stf_interval
        t = torch.arange(c + p)
        forced = ((t + 1) % k == 0) | (t == c - 1)
        forced &= t < c
        return self._run(window, key, c + p - 1, forced)
