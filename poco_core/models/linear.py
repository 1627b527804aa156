"""Linear univariate baselines: copy (last value), NLinear and DLinear (Zeng et al. 2023)."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from poco_core.models.base import BaseConfig, SessionSpec, UnivariateForecaster
from poco_core.models.registry import register


@register("copy")
class Copy(UnivariateForecaster):
    """Repeats the last context frame; has no parameters (trainers must skip optimisation)."""

    def predict(self, x: Tensor) -> Tensor:
        return x[..., -1:].expand(*x.shape[:-1], self.config.horizon)


@register("nlinear")
class NLinear(UnivariateForecaster):
    """Subtract the last value, Linear C -> P, add it back (robust to level shifts)."""

    def _build(self, sessions: list[SessionSpec]) -> None:
        self.linear = nn.Linear(self.config.context, self.config.horizon)

    def predict(self, x: Tensor) -> Tensor:
        last = x[..., -1:]
        return self.linear(x - last) + last


@dataclass
class DLinearConfig(BaseConfig):
    kernel_size: int | None = None  # None -> 2 * (context // 4) + 1, the paper's choice


@register("dlinear")
class DLinear(UnivariateForecaster):
    """Moving-average trend + seasonal residual, each mapped C -> P by its own linear layer."""

    config_class = DLinearConfig
    config: DLinearConfig

    def _build(self, sessions: list[SessionSpec]) -> None:
        c, p = self.config.context, self.config.horizon
        if self.config.kernel_size is None:
            self.config.kernel_size = 2 * (c // 4) + 1
        self.trend = nn.Linear(c, p)
        self.seasonal = nn.Linear(c, p)

    def predict(self, x: Tensor) -> Tensor:
        k = self.config.kernel_size
        assert k is not None
        # replicate-pad both ends so the trend has length C (as in the DLinear reference)
        lead = x.shape[:-1]
        flat = x.reshape(-1, 1, x.shape[-1])
        padded = F.pad(flat, ((k - 1) // 2, k // 2), mode="replicate")
        trend = F.avg_pool1d(padded, k, stride=1).reshape(*lead, -1)
        return self.trend(trend) + self.seasonal(x - trend)
