"""POCO: a per-unit MLP forecaster whose hidden layer is FiLM-modulated by a population encoder."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from poco_core.models.encoder import EncoderConfig, PopulationForecaster
from poco_core.models.mlp import MLPHead, affine
from poco_core.models.registry import register


FILM_MODES = ("reference", "residual")


class FiLMHead(nn.Module):
    """y = W_out(h * alpha + beta) + b_out with h = ReLU(W_in x), alpha/beta = Linear(cond).

    The alpha/beta maps are zero-initialised (weights and biases), so at initialisation the
    output is the constant b_out (``film="reference"``, the authors' function). With
    ``film="residual"`` the hidden layer is h * (1 + alpha) + beta: it starts as the plain MLP and
    the population only corrects it (an option; see docs/results.md). The beta path is folded through W_out,
    W_out beta = (W_out W_beta) cond + W_out b_beta, which is exact and skips one
    B x N x hidden tensor (a third of the FiLM cost)."""

    def __init__(self, context: int, horizon: int, hidden: int, cond_dim: int, film: str = "reference"):
        super().__init__()
        if film not in FILM_MODES:
            raise ValueError(f"film must be one of {FILM_MODES}, got {film!r}")
        self.residual = film == "residual"
        self.mlp = MLPHead(context, horizon, hidden)
        self.alpha = nn.Linear(cond_dim, hidden)
        self.beta = nn.Linear(cond_dim, hidden)
        for lin in (self.alpha, self.beta):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    @torch.no_grad()
    def start_as_mlp(self) -> None:
        """alpha = 1, beta = 0 whatever the conditioning: y = W_out h + b_out, the plain MLP."""
        for lin in (self.alpha, self.beta):
            lin.weight.zero_()
            lin.bias.zero_()
        if not self.residual:
            self.alpha.bias.fill_(1.0)

    def ignores_conditioning(self) -> bool:
        """True while alpha and beta are constants (zero weights): the model is its MLP, e.g. kept at
        its MLP warm-up, and its unit embeddings play no part in any forecast."""
        return not bool(self.alpha.weight.any() or self.beta.weight.any())

    def forward(self, x: Tensor, cond: Tensor, hidden: Tensor | None = None) -> Tensor:
        """x (..., C), cond (..., cond_dim) -> (..., P); ``hidden`` = self.mlp.hidden(x) if precomputed."""
        w_out = self.mlp.w_out
        shift = 1.0 if self.residual else 0.0
        if torch.is_grad_enabled():
            h = self.mlp.hidden(x) if hidden is None else hidden
            alpha = self.alpha(cond)
            y = F.linear((alpha + shift if self.residual else alpha) * h, w_out.weight)
        else:  # forecasting: the units x hidden tensors are written once each, and alpha is overwritten
            h = self.mlp.hidden(x) if hidden is None else hidden
            y = F.linear(affine(cond, self.alpha, shift).mul_(h), w_out.weight)
        beta_w = w_out.weight @ self.beta.weight
        beta_b = w_out.weight @ self.beta.bias + w_out.bias
        return y + F.linear(cond, beta_w, beta_b)


class MLPWarmup:
    """The MLP warm-up hooks (``training.loop``) of a model whose readout is a FiLMHead at ``self.head``."""

    head: FiLMHead

    def start_as_mlp(self) -> bool:
        self.head.start_as_mlp()
        return True

    def ignores_conditioning(self) -> bool:
        return self.head.ignores_conditioning()

    def mlp_forward(self, xs: list[Tensor]) -> list[Tensor]:
        """(B, C, N) -> (B, P, N) by the MLP alone: what the model computes after ``start_as_mlp``
        while its conditioning is frozen, without running the encoder (the warm-up's training steps)."""
        return [self.head.mlp(x.transpose(1, 2).contiguous()).transpose(1, 2) for x in xs]


@dataclass
class PocoConfig(EncoderConfig):
    hidden: int = 1024
    film: str = "reference"  # "reference": h * alpha + beta (the authors'); "residual": h * (1 + alpha) + beta


@register("poco")
class POCO(MLPWarmup, PopulationForecaster):
    """POCO (Duan et al. 2025) with the reference defaults; see shared/POCO_SPEC.md."""

    config_class = PocoConfig
    config: PocoConfig

    def _build_readout(self) -> None:
        c = self.config
        self.head = FiLMHead(c.context, c.horizon, c.hidden, c.d_model, c.film)

    def _mlp_params(self) -> list[nn.Parameter]:
        return list(self.head.mlp.parameters())

    def _readout(self, x_units: Tensor, e: Tensor, hidden: Tensor | None) -> Tensor:
        return self.head(x_units, e, hidden)

    def hidden_states(self, xs: list[Tensor]) -> list[Tensor]:
        """ReLU(W_in x) per session, (B, N, hidden): independent of the encoder, so embedding-only
        finetuning can compute it once per window (under no_grad) and pass ``hidden=`` to forward."""
        return [self.head.mlp.hidden(x.transpose(1, 2).contiguous()) for x in xs]  # strided: slow bmm
