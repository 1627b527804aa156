"""Netformer (Lu et al. 2024), multi-step: an attention-derived interaction matrix A (softmax
over presynaptic units) drives x_{t+1} = x_t + g A x_t, applied recursively.

The paper writes g = 1; but a row-stochastic A has eigenvalue 1, so I + A doubles the
population-mean mode every step (x 65,536 over 16 steps: losses of ~1e7 at initialisation).
A learnable scalar gain g, initialised to 0 (the copy forecast), keeps the update form and
the softmax while letting training find a stable strength."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from poco_core.models.base import (
    BaseConfig,
    SessionSpec,
    StepwiseForecaster,
    instance_norm,
)
from poco_core.models.registry import register


@dataclass
class NetformerConfig(BaseConfig):
    embed_size: int = 30  # per-unit identity embedding
    embed_std: float = 0.02


@register("netformer")
class Netformer(StepwiseForecaster):
    """Each unit's feature is its layer-normalised (over time) context trace concatenated with a
    per-session unit embedding; A = softmax(Q K^T / sqrt(dim)) is computed once per window.
    Inputs are instance-normalised and predictions mapped back (paper's stabilisers).
    Training: one-step predictions inside the context, free-running over the last P."""

    config_class = NetformerConfig
    config: NetformerConfig

    def _build(self, sessions: list[SessionSpec]) -> None:
        c = self.config
        dim = c.context + c.embed_size
        self.time_norm = nn.LayerNorm(c.context)
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.gain = nn.Parameter(torch.zeros(()))

    def _init_session(self, key: str, spec: SessionSpec) -> None:
        self.per_session[key] = nn.Embedding(spec.n_units, self.config.embed_size)
        nn.init.normal_(self.per_session[key].weight, std=self.config.embed_std)

    def _interactions(self, x: Tensor, key: str) -> Tensor:
        """x (B, C, N) normalised -> A (B, N, N), rows sum to 1."""
        emb: nn.Embedding = self.per_session[key]  # type: ignore[assignment]
        trace = self.time_norm(x.transpose(1, 2))
        f = torch.cat((trace, emb.weight.expand(x.shape[0], -1, -1)), dim=-1)
        return F.softmax(self.q(f) @ self.k(f).transpose(1, 2) / f.shape[-1] ** 0.5, dim=-1)

    def _free_run(self, a: Tensor, x: Tensor, steps: int) -> Tensor:
        """x (B, N) -> (B, steps, N)."""
        outs = []
        for _ in range(steps):
            x = x + self.gain * (a @ x[..., None])[..., 0]
            outs.append(x)
        return torch.stack(outs, dim=1)

    def rollout(self, x: Tensor, key: str) -> Tensor:
        xn, mean, std = instance_norm(x, dim=1)
        return self._free_run(self._interactions(xn, key), xn[:, -1], self.config.horizon) * std + mean

    def step_predictions(self, window: Tensor, key: str) -> Tensor:
        c = self.config.context
        xn, mean, std = instance_norm(window[:, :c], dim=1)
        a = self._interactions(xn, key)
        inside = xn[:, :-1] + self.gain * (xn[:, :-1] @ a.transpose(1, 2))  # one-step, teacher-forced
        free = self._free_run(a, xn[:, -1], self.config.horizon)
        return torch.cat((inside, free), dim=1) * std + mean
