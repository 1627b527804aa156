"""The univariate MLP forecaster: POCO's backbone, and on its own the MLP baseline."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from poco_core.models.base import BaseConfig, SessionSpec, UnivariateForecaster
from poco_core.models.registry import register


def affine(t: Tensor, lin: nn.Linear, shift: float = 0.0) -> Tensor:
    """lin(t) + shift as one matmul of [t, 1]: addmm first copies the broadcast bias into its output,
    an extra pass over a units x hidden tensor, the largest of a forecast (10-20% of POCO's readout)."""
    ones = t.new_ones(*t.shape[:-1], 1)
    return torch.cat((t, ones), -1) @ torch.cat((lin.weight, (lin.bias + shift)[:, None]), 1).t()


class MLPHead(nn.Module):
    """y = W_out ReLU(W_in x) + b_out per unit; ``hidden`` is split out so callers can
    modulate it (FiLM) or reuse it (it does not depend on any encoder)."""

    def __init__(self, context: int, horizon: int, hidden: int):
        super().__init__()
        self.w_in = nn.Linear(context, hidden)
        self.w_out = nn.Linear(hidden, horizon)

    def hidden(self, x: Tensor) -> Tensor:
        """(..., C) -> (..., H); forecasting (no autograd) folds the bias into the matmul (`affine`)."""
        if torch.is_grad_enabled():
            return F.relu(self.w_in(x), inplace=True)  # safe: linear does not keep its output
        return affine(x, self.w_in).relu_()

    def forward(self, x: Tensor) -> Tensor:
        return self.w_out(self.hidden(x))


@dataclass
class MLPConfig(BaseConfig):
    hidden: int = 1024


@register("mlp")
class MLP(UnivariateForecaster):
    """Two-layer MLP, hidden 1024 (POCO without FiLM conditioning)."""

    config_class = MLPConfig
    config: MLPConfig

    def _build(self, sessions: list[SessionSpec]) -> None:
        c = self.config
        self.head = MLPHead(c.context, c.horizon, c.hidden)

    def _mlp_params(self) -> list[nn.Parameter]:
        return list(self.head.parameters())

    def predict(self, x: Tensor) -> Tensor:
        return self.head(x)
