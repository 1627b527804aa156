"""CalM's Neural Quantizer (CALM_SPEC.md §3): a VQ-VAE over single-neuron traces.

Causal encoder (Conv1d with stride L, then causal RoPE Transformer layers) -> nearest code of a
shared K x C codebook (straight-through) -> non-causal Transformer decoder -> ConvTranspose1d.
Losses: reconstruction (MSE + alpha(1 - r)), commitment and codebook terms, Gumbel-softmax
batch entropy, codebook orthogonality and an auxiliary next-token head; dead codes are revived
from a queue of recent encoder vectors. The same weights serve every neuron and session.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from poco_core.models.calm.config import CalMConfig
from poco_core.models.calm.layers import Block


def pearson_rows(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Pearson r of each row pair of (n, T) tensors."""
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + eps)


def tau_at(step: int, total: int, start: float, end: float) -> float:
    """Gumbel temperature, exponential from `start` at step 0 to `end` at the last step."""
    return start * (end / start) ** (min(step, max(total - 1, 1)) / max(total - 1, 1))


def entropy_loss(neg_dist: Tensor, tau: float) -> Tensor:
    """-H of the batch-mean Gumbel-softmax assignment (Eq. 6): -log K when uniform, 0 when collapsed."""
    p = F.gumbel_softmax(neg_dist, tau=tau, dim=-1).mean(0) if tau > 0 else neg_dist.softmax(-1).mean(0)
    return (p * (p + 1e-12).log()).sum()


def orthogonality_loss(codebook: Tensor) -> Tensor:
    """mean((Ê Êᵀ − I)²) with l2-normalised rows (Eq. 7)."""
    e = F.normalize(codebook, dim=-1)
    gram = e @ e.T
    return (gram - torch.eye(len(e), device=e.device, dtype=e.dtype)).square().mean()


class NeuralQuantizer(nn.Module):
    def __init__(self, c: CalMConfig):
        super().__init__()
        self.c = c
        d, k = c.nq_dim, c.codebook_size
        ff = c.nq_ff_mult * d
        self.conv = nn.Conv1d(1, d, c.window, stride=c.window)
        self.enc = nn.Sequential(*[Block(d, c.nq_heads, ff, c.nq_dropout, causal=True) for _ in range(c.nq_enc_layers)])
        self.enc_ln = nn.LayerNorm(d)
        self.codebook = nn.Parameter(torch.randn(k, d) / math.sqrt(d))
        self.dec = nn.Sequential(*[Block(d, c.nq_heads, ff, c.nq_dropout, causal=False) for _ in range(c.nq_dec_layers)])
        self.dec_ln = nn.LayerNorm(d)
        self.deconv = nn.ConvTranspose1d(d, 1, c.window, stride=c.window)
        self.ar = Block(d, c.nq_heads, ff, c.nq_dropout, causal=True)
        self.ar_heads = nn.ModuleList(nn.Linear(d, k) for _ in range(c.ar_horizon))
        self.ar_align = nn.ModuleList(nn.Linear(d, d) for _ in range(c.ar_horizon))
        self.register_buffer("usage", torch.full((k,), 1.0 / k))
        self.register_buffer("queue", torch.zeros(c.queue_size, d))
        self.register_buffer("queue_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    # -- tokenising -----------------------------------------------------------------
    def encode(self, y: Tensor) -> Tensor:
        """(n, T) traces, T a multiple of L -> (n, T/L, C) encoder vectors (causal: token t sees frames < L(t+1))."""
        x = self.conv(y[:, None, :]).transpose(1, 2)
        return self.enc_ln(self.enc(x))

    def distances(self, x: Tensor, codebook: Tensor) -> Tensor:
        """Squared distances (..., K) of vectors x (..., C) to every code."""
        return x.square().sum(-1, keepdim=True) - 2 * x @ codebook.T + codebook.square().sum(-1)

    def tokenize(self, y: Tensor) -> Tensor:
        """(n, T) -> (n, T/L) token ids (Eq. 2)."""
        return self.distances(self.encode(y), self.codebook).argmin(-1)

    def decode(self, q: Tensor) -> Tensor:
        """(n, T_d, C) quantised vectors -> (n, T_d L) traces."""
        h = self.dec_ln(self.dec(q))
        return self.deconv(h.transpose(1, 2))[:, 0]

    def decode_tokens(self, z: Tensor) -> Tensor:
        return self.decode(self.codebook[z])

    def prototypes(self) -> Tensor:
        """(K, L): each code decoded on its own, the shape a token stands for."""
        return self.decode_tokens(torch.arange(self.c.codebook_size, device=self.codebook.device)[:, None])

    # -- training -------------------------------------------------------------------
    def loss(self, y: Tensor, step: int) -> tuple[Tensor, dict[str, float]]:
        """Quantizer loss (Eq. 9) on (n, T) traces at quantizer step `step`; updates usage, queue, revival."""
        c = self.c
        reset = self.revive() if c.revive_every and step > 0 and step % c.revive_every == 0 else 0
        x = self.encode(y)
        flat = x.reshape(-1, x.shape[-1])
        if not bool(self.initialised):
            with torch.no_grad():
                self.codebook.copy_(flat[torch.randint(len(flat), (c.codebook_size,), device=flat.device)])
                self.initialised.fill_(True)
        warm = step < c.warmup_steps
        codebook = self.codebook.detach() if warm else self.codebook
        neg_dist = -self.distances(flat, codebook)
        idx = neg_dist.argmax(-1)
        e = codebook[idx].view_as(x)
        q = x + (e - x).detach()  # straight-through
        y_hat = self.decode(q)
        rec_mse = F.mse_loss(y_hat, y)
        rec_r = pearson_rows(y_hat, y).mean()
        commit = (x - e.detach()).square().mean()
        embed = (x.detach() - e).square().mean()
        tau = tau_at(step, c.nq_steps, c.tau_start, c.tau_end)
        ent = entropy_loss(neg_dist, tau)
        orth = orthogonality_loss(codebook)
        ar_ce, ar_align = self._ar_loss(q, idx.view(x.shape[:2]), codebook)
        loss = (rec_mse + c.alpha_pearson * (1 - rec_r) + c.w_commit * commit + c.w_embed * embed
                + c.w_entropy * ent + c.w_orth * orth + c.w_ar_ce * ar_ce + c.w_ar_align * ar_align)
        stats = self._bookkeeping(flat.detach(), idx) | {"codes_reset": reset}
        named = {"rec_mse": rec_mse, "rec_r": rec_r, "commit": commit, "entropy": ent, "orth": orth, "ar_ce": ar_ce}
        stats.update({k: float(v.detach()) for k, v in named.items()}, tau=tau)
        return loss, stats

    def _ar_loss(self, q: Tensor, idx: Tensor, codebook: Tensor) -> tuple[Tensor, Tensor]:
        """Auxiliary next-token losses (Eq. 8) for k = 1..H tokens ahead: CE and Align (MSE to SG[e])."""
        h = self.ar(q)
        t = q.shape[1]
        ces, aligns = [], []
        for k, (head, align) in enumerate(zip(self.ar_heads, self.ar_align), start=1):
            if k >= t:
                break
            hk = h[:, : t - k]
            ces.append(F.cross_entropy(head(hk).reshape(-1, codebook.shape[0]), idx[:, k:].reshape(-1)))
            aligns.append((align(hk) - codebook[idx[:, k:]].detach()).square().mean())
        if not ces:
            zero = q.sum() * 0
            return zero, zero
        return torch.stack(ces).mean(), torch.stack(aligns).mean()

    @torch.no_grad()
    def _bookkeeping(self, flat: Tensor, idx: Tensor) -> dict[str, float]:
        """Usage EMA and the queue of recent encoder vectors (revival runs before the next forward)."""
        c = self.c
        counts = torch.bincount(idx, minlength=c.codebook_size).float()
        share = counts / counts.sum()
        self.usage.mul_(c.usage_decay).add_((1 - c.usage_decay) * share)
        take = flat[torch.randperm(len(flat), device=flat.device)[: c.queue_size]]
        pos = (int(self.queue_count) + torch.arange(len(take), device=flat.device)) % c.queue_size
        self.queue[pos] = take
        self.queue_count.add_(len(take))
        nz = share[share > 0]
        return {"perplexity": float(torch.exp(-(nz * nz.log()).sum())), "codes_used": int((counts > 0).sum())}

    @torch.no_grad()
    def revive(self) -> int:
        """Reset codes whose usage EMA is below 1/(16K) to random queue vectors; returns how many."""
        k = self.c.codebook_size
        dead = (self.usage < 1.0 / (16 * k)).nonzero().flatten()
        filled = min(int(self.queue_count), self.c.queue_size)
        if len(dead) == 0 or filled == 0:
            return 0
        pick = torch.randint(filled, (len(dead),), device=self.queue.device)
        self.codebook[dead] = self.queue[pick]
        self.usage[dead] = 1.0 / k
        return len(dead)
