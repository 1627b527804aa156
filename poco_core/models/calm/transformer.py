"""CalM's Dual-Axis Transformer (CALM_SPEC.md §4) and its training corruptions.

Input (B, N, T) token ids plus one embedding per neuron and one per session (summed). Each
block attends across the neurons of a time step (bidirectional, no positional code, so the
model is permutation-equivariant over neurons) and then causally across time per neuron (RoPE).
Logits (B, N, T, K) at t predict the tokens at t + 1. Since only the temporal axis mixes time
steps, and causally, `extend` runs new steps alone against a key/value cache of earlier ones
(exact: the same outputs as the full pass), which a rollout uses instead of recomputing its context.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from poco_core.models.calm.config import CalMConfig
from poco_core.models.calm.layers import KV, SelfAttention, feed_forward


class DualAxisBlock(nn.Module):
    """Pre-LN: x += NeuralAttn(LN x); x += TemporalAttn(LN x, causal, RoPE); x += FFN(LN x)."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.ln_n, self.ln_t, self.ln_f = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.neural = SelfAttention(d, heads, dropout)
        self.temporal = SelfAttention(d, heads, dropout, causal=True, rotary=True)
        self.ff = feed_forward(d, ff, dropout)
        self.drop = nn.Dropout(dropout)

    def _across_neurons(self, x: Tensor) -> Tensor:
        b, n, t, d = x.shape
        across = self.ln_n(x).transpose(1, 2).reshape(b * t, n, d)
        return x + self.drop(self.neural(across)).view(b, t, n, d).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self._across_neurons(x)
        b, n, t, d = x.shape
        x = x + self.drop(self.temporal(self.ln_t(x).reshape(b * n, t, d))).view(b, n, t, d)
        return x + self.drop(self.ff(self.ln_f(x)))

    def extend(self, x: Tensor, past: KV | None) -> tuple[Tensor, KV]:
        """New steps x (B, N, T_new, d) after the cached ones (eval mode); returns them and the cache."""
        x = self._across_neurons(x)
        b, n, t, d = x.shape
        y, cache = self.temporal.extend(self.ln_t(x).reshape(b * n, t, d), past)
        x = x + y.view(b, n, t, d)
        return x + self.ff(self.ln_f(x)), cache


class DualAxisTransformer(nn.Module):
    def __init__(self, c: CalMConfig):
        super().__init__()
        self.tok = nn.Embedding(c.codebook_size, c.d_model)
        nn.init.normal_(self.tok.weight, std=0.02)
        self.blocks = nn.ModuleList(DualAxisBlock(c.d_model, c.heads, c.ff, c.dropout) for _ in range(c.layers))
        self.ln = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.codebook_size)

    def hidden(self, z: Tensor, unit: Tensor, session: Tensor) -> Tensor:
        """(B, N, T) ids, unit rows (N, d), session row (d) -> last-layer states (B, N, T, d)."""
        x = self.tok(z) + unit[None, :, None, :] + session
        for block in self.blocks:
            x = block(x)
        return self.ln(x)

    def forward(self, z: Tensor, unit: Tensor, session: Tensor) -> Tensor:
        return self.head(self.hidden(z, unit, session))

    def extend(self, z: Tensor, unit: Tensor, session: Tensor, cache: list[KV] | None) -> tuple[Tensor, list[KV]]:
        """Logits (B, N, T_new, K) of new token steps z (B, N, T_new) after the `cache` of earlier
        steps (None: none yet), and the cache extended by them; eval mode. Caches are not
        modified in place, so one prefilled cache can seed several sampled rollouts."""
        x = self.tok(z) + unit[None, :, None, :] + session
        new: list[KV] = []
        for i, block in enumerate(self.blocks):
            x, kv = block.extend(x, None if cache is None else cache[i])
            new.append(kv)
        return self.head(self.ln(x)), new


def scheduled_sampling(inp: Tensor, pred_next: Tensor, prob: float, block: int, gen: torch.Generator | None = None) -> Tensor:
    """Replace one block of `block` consecutive input positions of each sample (with probability
    `prob`) by the model's own predictions; `pred_next[..., t]` predicts token t + 1 (Eq. 12)."""
    b, _, t = inp.shape
    if block < 1 or t - block < 1 or prob <= 0:
        return inp
    out = inp.clone()
    chosen = torch.rand(b, generator=gen, device=inp.device) < prob
    starts = torch.randint(1, t - block + 1, (b,), generator=gen, device=inp.device)
    for i in chosen.nonzero().flatten().tolist():
        s = int(starts[i])
        out[i, :, s : s + block] = pred_next[i, :, s - 1 : s + block - 1]
    return out


def neighbour_table(codebook: Tensor, k: int) -> Tensor:
    """(K, k) ids of each code's k cosine-nearest other codes."""
    e = torch.nn.functional.normalize(codebook, dim=-1)
    sim = e @ e.T
    sim.fill_diagonal_(-float("inf"))
    return sim.topk(min(k, len(e) - 1), dim=-1).indices


def neighbour_replace(inp: Tensor, table: Tensor, prob: float, gen: torch.Generator | None = None) -> Tensor:
    """Replace each token with probability `prob` by one of its nearest codes, uniformly (Eq. 13)."""
    if prob <= 0:
        return inp
    mask = torch.rand(inp.shape, generator=gen, device=inp.device) < prob
    pick = torch.randint(table.shape[1], inp.shape, generator=gen, device=inp.device)
    return torch.where(mask, table[inp, pick], inp)
