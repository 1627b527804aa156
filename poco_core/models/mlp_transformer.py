"""Ablation: POCO's MLP conditioned (FiLM) by a univariate Transformer over each unit's own
tokens instead of the population encoder."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from poco_core.models.base import (
    BaseConfig,
    SessionSpec,
    UnivariateForecaster,
    over_unit_chunks,
)
from poco_core.models.poco import FiLMHead, MLPWarmup
from poco_core.models.registry import register


@dataclass
class MLPTransformerConfig(BaseConfig):
    hidden: int = 1024
    d_model: int = 128
    token_len: int | None = None  # None -> max(1, context // 3), as POCO
    layers: int = 1
    heads: int = 16  # PatchTST-style encoder defaults
    ff_dim: int = 256
    dropout: float = 0.2
    chunk_elements: int = 65536


@register("mlp_transformer")
class MLPTransformer(MLPWarmup, UnivariateForecaster):
    """Tokens E(k) = W x_k + b (+ learned position), no unit/session embeddings; the last
    layer's token states are concatenated (d * C / T_C) and FiLM-condition the MLP."""

    config_class = MLPTransformerConfig
    config: MLPTransformerConfig

    def _build(self, sessions: list[SessionSpec]) -> None:
        c = self.config
        if c.token_len is None:
            c.token_len = max(1, c.context // 3)
        self.n_tokens = c.context // c.token_len
        self.token_proj = nn.Linear(c.token_len, c.d_model)
        self.pos = nn.Parameter(torch.randn(self.n_tokens, c.d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(c.d_model, c.heads, c.ff_dim, c.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.head = FiLMHead(c.context, c.horizon, c.hidden, c.d_model * self.n_tokens)

    def _mlp_params(self) -> list[nn.Parameter]:
        return list(self.head.mlp.parameters())

    def predict(self, x: Tensor) -> Tensor:
        chunk = max(1, self.config.chunk_elements // max(1, x.shape[0]))
        return over_unit_chunks(lambda sl: self._units(x[:, sl]), x.shape[1], chunk)

    def _units(self, x: Tensor) -> Tensor:
        """(B, n, C) -> (B, n, P); the most recent n_tokens * T_C steps form the tokens."""
        c = self.config
        assert c.token_len is not None
        b, n, _ = x.shape
        seg = x[..., c.context - self.n_tokens * c.token_len :].reshape(b * n, self.n_tokens, c.token_len)
        states = self.encoder(self.token_proj(seg) + self.pos)
        return self.head(x, states.reshape(b, n, -1))
