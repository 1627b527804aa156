"""POYO-only ablation: the POCO encoder with a linear readout of its per-unit output."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from poco_core.models.encoder import EncoderConfig, PopulationForecaster
from poco_core.models.registry import register


@dataclass
class PoyoConfig(EncoderConfig):
    pass


@register("poyo")
class POYOOnly(PopulationForecaster):
    """x_hat = W_out e + b_out with e the encoder output for each unit (no MLP forecaster)."""

    config_class = PoyoConfig
    config: PoyoConfig

    def _build_readout(self) -> None:
        self.readout = nn.Linear(self.config.d_model, self.config.horizon)

    def _readout(self, x_units: Tensor, e: Tensor, hidden: Tensor | None) -> Tensor:
        return self.readout(e)
