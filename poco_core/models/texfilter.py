"""TexFilter (FilterNet, Yi et al. 2024): a context-dependent learnable frequency filter, univariate."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from poco_core.models.base import (
    BaseConfig,
    SessionSpec,
    UnivariateForecaster,
    instance_norm,
)
from poco_core.models.registry import register


@dataclass
class TexFilterConfig(BaseConfig):
    embed_size: int = 128
    hidden: int = 256
    dropout: float = 0.3
    embed_std: float = 0.02
    sparsity: float = 0.01  # soft-shrink threshold on the filter


class ComplexFilter(nn.Module):
    """Two complex element-wise layers (ReLU between) that turn a spectrum into its own filter."""

    def __init__(self, dim: int, std: float):
        super().__init__()
        self.w = nn.Parameter(torch.randn(2, 2, dim) * std)  # layer, (real, imag), dim
        self.b = nn.Parameter(torch.randn(2, 2, dim) * std)

    def forward(self, z: Tensor, sparsity: float) -> Tensor:
        re, im = z.real, z.imag
        for layer in range(2):
            (wr, wi), (br, bi) = self.w[layer], self.b[layer]
            re, im = re * wr - im * wi + br, im * wr + re * wi + bi
            if layer == 0:
                re, im = F.relu(re), F.relu(im)
        out = F.softshrink(torch.stack((re, im), dim=-1), sparsity)
        return torch.view_as_complex(out.contiguous())


@register("texfilter")
class TexFilter(UnivariateForecaster):
    """Each value is embedded (x * learnable vector), filtered in the frequency domain by a
    filter computed from the spectrum itself, then an MLP maps C x D -> P."""

    config_class = TexFilterConfig
    config: TexFilterConfig

    def _build(self, sessions: list[SessionSpec]) -> None:
        c = self.config
        self.embedding = nn.Parameter(torch.randn(c.embed_size) * c.embed_std)
        self.filter = ComplexFilter(c.embed_size, c.embed_std)
        self.norm_in = nn.LayerNorm(c.embed_size)
        self.norm_out = nn.LayerNorm(c.embed_size)
        self.drop = nn.Dropout(c.dropout)
        self.fc = nn.Sequential(
            nn.Linear(c.context * c.embed_size, c.hidden), nn.LeakyReLU(), nn.Linear(c.hidden, c.horizon)
        )

    def predict(self, x: Tensor) -> Tensor:
        c = self.config
        x, mean, std = instance_norm(x, dim=-1)
        z = self.norm_in(x[..., None] * self.embedding)  # (B, N, C, D)
        spec = torch.fft.rfft(z, dim=-2, norm="ortho")
        spec = spec * self.filter(spec, c.sparsity)
        z = self.drop(self.norm_out(torch.fft.irfft(spec, n=c.context, dim=-2, norm="ortho")))
        return self.fc(z.flatten(-2)) * std + mean
