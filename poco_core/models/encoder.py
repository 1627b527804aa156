"""POYO-style Perceiver-IO population encoder with rotary time, and the shared base of the
models built on it (POCO, POYO-only).

Each unit's context is cut into tokens of T_C steps; latents (timestamps spread over
[0, C)) cross-attend to all tokens of a sample, self-attend, and are finally queried by
each unit's embedding at timestamp C. Within one session every sample has the same
number of tokens, so attention is plain batched ``scaled_dot_product_attention`` (no mask).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from poco_core.models.base import (
    BaseConfig,
    BaseForecaster,
    SessionSpec,
    over_unit_chunks,
    tensors_key,
)
from poco_core.models.rotary import ROTARY_CONVENTIONS, default_t_max, rotary_angles, rotate

Rot = tuple[Tensor, Tensor]
QUERY_CACHE_ELEMENTS = 1 << 24  # cached decoder query terms per session at most (64 MB in fp32)


@dataclass
class EncoderConfig(BaseConfig):
    d_model: int = 128
    token_len: int | None = None  # None -> max(1, context // 3): 16 for C = 48
    n_latents: int = 8
    cross_heads: int = 1
    cross_head_dim: int = 64
    self_attn_heads: int = 16  # reference code; the paper text says 8
    self_attn_head_dim: int = 64
    self_attn_layers: int = 1
    ff_mult: int = 4
    ff_dropout: float = 0.2
    self_attn_dropout: float = 0.4  # on the self-attention and its feed-forward residual branches
    attn_dropout: float = 0.0
    rotary_t_max: float | None = None  # None -> default_t_max(context)
    rotary: str = "reference"  # "reference" (authors' periods and pairing) or "legacy" (see rotary.py)
    embed_std: float = 0.02
    dataset_embedding: bool | None = None  # None -> on when the initial sessions span > 1 dataset
    query_dataset_embedding: bool = True  # the reference adds the dataset row to the unit queries too
    unit_dropout: float = 0.0  # training only: drop a unit's embedding row (tokens and query) with this probability
    chunk_elements: int = 65536  # per-unit work over more (sample, unit) pairs than this is done in slices,
    slice_elements: int = 16384  # of this many pairs each, recomputed in the backward pass (bounds activation memory)

    # stored configs written before these fields existed computed the legacy function
    LEGACY: ClassVar[dict[str, Any]] = {"rotary": "legacy", "query_dataset_embedding": False}

    def resolve(self, sessions: list[SessionSpec]) -> None:
        """Fill the ``None`` fields so the stored config rebuilds exactly this model."""
        if self.token_len is None:
            self.token_len = max(1, self.context // 3)
        if not 1 <= self.token_len <= self.context:
            raise ValueError(f"token_len must be in [1, context], got {self.token_len}")
        if self.rotary_t_max is None:
            self.rotary_t_max = default_t_max(self.context)
        if self.dataset_embedding is None:
            self.dataset_embedding = len({s.dataset for s in sessions}) > 1
        if self.rotary not in ROTARY_CONVENTIONS:
            raise ValueError(f"rotary must be one of {ROTARY_CONVENTIONS}, got {self.rotary!r}")


class FeedForward(nn.Module):
    """Pre-LayerNorm GEGLU feed-forward."""

    def __init__(self, dim: int, mult: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, dim * mult * 2)
        self.drop = nn.Dropout(dropout)
        self.down = nn.Linear(dim * mult, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.gated(self.up(self.norm(x)))

    def gated(self, pre: Tensor) -> Tensor:
        """The part after the up-projection: down(a * gelu(gate))."""
        a, gate = pre.chunk(2, dim=-1)
        if torch.is_grad_enabled():
            return self.down(self.drop(a * F.gelu(gate)))
        return self.down(self.drop(a.mul_(F.gelu(gate))))  # inference: no extra buffer


def _split_heads(t: Tensor, heads: int) -> Tensor:
    """(..., N, H*D) -> (..., H, N, D)."""
    return t.unflatten(-1, (heads, -1)).transpose(-2, -3)


class _RotaryAttention(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, rotate_value: bool, dropout: float, rotary: str):
        super().__init__()
        self.heads, self.rotate_value, self.dropout, self.rotary = heads, rotate_value, dropout, rotary
        self.norm = nn.LayerNorm(dim)
        self.to_out = nn.Linear(heads * head_dim, dim)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, q_rot: Rot, k_rot: Rot) -> Tensor:
        r = self.rotary
        q, k = rotate(q, *q_rot, r), rotate(k, *k_rot, r)
        if self.rotate_value:
            v = rotate(v, *k_rot, r)
        if q.shape[:-2] != k.shape[:-2]:
            q = q.expand(*k.shape[:-2], *q.shape[-2:])
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        if self.rotate_value:  # counter-rotate so the output carries relative, not absolute, time
            out = rotate(out, q_rot[0], -q_rot[1], r)
        return self.to_out(out.transpose(-2, -3).flatten(-2))


class RotaryCrossAttention(_RotaryAttention):
    """Queries (B, Nq, d) or batch-free (Nq, d) attend to context (B, Nk, d)."""

    def __init__(self, dim: int, heads: int, head_dim: int, rotate_value: bool, dropout: float, rotary: str):
        super().__init__(dim, heads, head_dim, rotate_value, dropout, rotary)
        self.context_norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, heads * head_dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * heads * head_dim, bias=False)

    def forward(self, x: Tensor, context: Tensor, q_rot: Rot, k_rot: Rot) -> Tensor:
        q = _split_heads(self.to_q(self.norm(x)), self.heads)
        k, v = (_split_heads(t, self.heads) for t in self.to_kv(self.context_norm(context)).chunk(2, dim=-1))
        return self._attend(q, k, v, q_rot, k_rot)


class RotarySelfAttention(_RotaryAttention):
    def __init__(self, dim: int, heads: int, head_dim: int, rotate_value: bool, dropout: float, rotary: str):
        super().__init__(dim, heads, head_dim, rotate_value, dropout, rotary)
        self.to_qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)

    def forward(self, x: Tensor, rot: Rot) -> Tensor:
        q, k, v = (_split_heads(t, self.heads) for t in self.to_qkv(self.norm(x)).chunk(3, dim=-1))
        return self._attend(q, k, v, rot, rot)


class QueryTerms(NamedTuple):
    """The decoder's per-unit terms, which depend on the unit queries only (not on the window):
    rotated, scaled attention queries (H, n, D); the residual stream before attention, queries +
    to_out's bias (n, d); and its centred part through dec_ffn's LayerNorm gain and up-projection (n, 2F)."""

    q: Tensor
    base: Tensor
    up: Tensor | None

    def units(self, sl: slice) -> "QueryTerms":
        return QueryTerms(self.q[..., sl, :], self.base[sl], None if self.up is None else self.up[sl])


def _centred(t: Tensor) -> Tensor:
    return t - t.mean(-1, keepdim=True)


class PerceiverEncoder(nn.Module):
    """Tokens -> latents (``encode``), then latents -> one d-vector per unit query (``decode``)."""

    def __init__(self, c: EncoderConfig):
        super().__init__()
        assert c.token_len is not None and c.rotary_t_max is not None
        d = c.d_model
        self.context, self.token_len = c.context, c.token_len
        self.token_proj = nn.Linear(c.token_len, d)
        self.latents = nn.Parameter(torch.randn(c.n_latents, d) * c.embed_std)
        self.enc_atn = RotaryCrossAttention(d, c.cross_heads, c.cross_head_dim, True, c.attn_dropout, c.rotary)
        self.enc_ffn = FeedForward(d, c.ff_mult, c.ff_dropout)
        self.proc = nn.ModuleList(
            nn.ModuleList(
                [
                    RotarySelfAttention(d, c.self_attn_heads, c.self_attn_head_dim, True, c.attn_dropout, c.rotary),
                    FeedForward(d, c.ff_mult, c.ff_dropout),
                ]
            )
            for _ in range(c.self_attn_layers)
        )
        self.proc_drop = nn.Dropout(c.self_attn_dropout)
        self.dec_atn = RotaryCrossAttention(d, c.cross_heads, c.cross_head_dim, False, c.attn_dropout, c.rotary)
        self.dec_ffn = FeedForward(d, c.ff_mult, c.ff_dropout)
        # all timestamps are fixed by the config, so the rotations are buffers (no trig per call)
        tc, hx, hs, tmax = c.token_len, c.cross_head_dim, c.self_attn_head_dim, c.rotary_t_max
        n_tok = c.context // tc
        latent_t = torch.arange(c.n_latents, dtype=torch.float64) * c.context / c.n_latents
        token_t = c.context - n_tok * tc + tc * torch.arange(n_tok, dtype=torch.float64)
        for name, (t, dim) in {
            "lat_x": (latent_t, hx),  # latents in the cross-attentions
            "lat_s": (latent_t, hs),  # latents in self-attention
            "tok": (token_t, hx),  # the K tokens of a unit
            "query": (torch.full((1,), float(c.context), dtype=torch.float64), hx),
        }.items():
            cos, sin = rotary_angles(t, dim, tmax, c.rotary)
            self.register_buffer(f"{name}_cos", cos, persistent=False)
            self.register_buffer(f"{name}_sin", sin, persistent=False)

    def encode(self, x_units: Tensor, token_bias: Tensor) -> Tensor:
        """x_units (B, N, C) unit-major, token_bias (N, d) -> latents (B, L, d).

        With C not a multiple of T_C the earliest C mod T_C steps are left out of the tokens
        (the MLP still sees them); a token's timestamp is its first step. The tokens go through
        token_proj as one 2-D matrix: a strided 4-D view makes autograd-mode matmul fall back to
        one tiny product per unit (3 ms per 512-unit window)."""
        b, n, c = x_units.shape
        tc = self.token_len
        k = c // tc
        offset = c - k * tc
        seg = x_units[..., offset:].reshape(b * n * k, tc)
        tokens = (self.token_proj(seg).view(b, n, k, -1) + token_bias[:, None, :]).view(b, n * k, -1)
        lat_cross = (self.lat_x_cos, self.lat_x_sin)
        lat_self = (self.lat_s_cos, self.lat_s_sin)
        tok_rot = (self.tok_cos.repeat(n, 1), self.tok_sin.repeat(n, 1))  # token order: unit-major
        lat = self.latents.expand(b, -1, -1)
        lat = lat + self.enc_atn(lat, tokens, lat_cross, tok_rot)
        lat = lat + self.enc_ffn(lat)
        for attn, ff in self.proc:  # type: ignore[misc]
            lat = lat + self.proc_drop(attn(lat, lat_self))
            lat = lat + self.proc_drop(ff(lat))
        return lat

    def query_terms(self, queries: Tensor, with_up: bool = True) -> QueryTerms:
        """The per-unit part of ``decode`` for queries (n, d): computed once per slice of units,
        whatever the batch size (and cached across forecasts, see PopulationForecaster).
        ``with_up=False`` leaves out the up-projection term: for a single window, computing
        up(LN(x)) directly costs the same and keeps one 2F-wide tensor fewer for backward."""
        atn, ffn = self.dec_atn, self.dec_ffn
        q = _split_heads(atn.to_q(atn.norm(queries)), atn.heads)
        q = rotate(q, self.query_cos, self.query_sin, atn.rotary) * q.shape[-1] ** -0.5
        base = queries + atn.to_out.bias
        return QueryTerms(q, base, F.linear(_centred(base), ffn.up.weight * ffn.norm.weight) if with_up else None)

    def decode(self, latents: Tensor, terms: QueryTerms) -> Tensor:
        """latents (B, L, d), the queries' terms -> (B, n, d); queries sit at timestamp C.
        Values are not rotated here: the output is a per-unit code, not a time signal.

        The function is dec_atn's attention then dec_ffn with residuals, computed in latent space:
        the attention output is P (B, n, H*L) times the L latents' values already projected by
        to_out, so the residual stream is x = base + P Vo; and LayerNorm then up-projection is
        affine in x given its mean and std: up(LN(x)) = (Wg x_c) / std + c with Wg = W_up diag(gain),
        x_c = x - mean(x) = base_c + P Vo_c. So the up-projection (d x 2F per unit and sample)
        becomes Wg base_c, once per unit (QueryTerms.up), plus P (Wg Vo_c), H*L x 2F per unit.
        Centring both terms before the products keeps LayerNorm's own cancellation-free order."""
        atn, ffn = self.dec_atn, self.dec_ffn
        b = latents.shape[0]
        k, v = (_split_heads(t, atn.heads) for t in atn.to_kv(atn.context_norm(latents)).chunk(2, dim=-1))
        k = rotate(k, self.lat_x_cos, self.lat_x_sin, atn.rotary)
        p = torch.softmax(terms.q @ k.transpose(-1, -2), dim=-1)  # (B, H, n, L): L is 8, no fused kernel needed
        if atn.dropout and self.training:
            p = F.dropout(p, atn.dropout)
        w_out = atn.to_out.weight  # (d, H*D)
        vo = (v @ w_out.view(w_out.shape[0], atn.heads, -1).permute(1, 2, 0)).flatten(1, 2)  # (B, H*L, d)
        p = p.transpose(1, 2).flatten(2)  # (B, n, H*L); free for one head
        x = torch.baddbmm(terms.base, p, vo)
        if terms.up is None:
            return x + ffn(x)
        rstd = (x.var(-1, correction=0, keepdim=True) + ffn.norm.eps).rsqrt()
        c = F.linear(ffn.norm.bias, ffn.up.weight, ffn.up.bias)
        uv = torch.cat((F.linear(_centred(vo), ffn.up.weight * ffn.norm.weight), c.expand(b, 1, -1)), dim=1)
        # rstd scales the per-unit term and P, not the product: nothing 2F wide is kept for backward but
        # pre, and the product accumulates into the scaled term in place (autograd needs neither's old value)
        pre = (terms.up * rstd).baddbmm_(torch.cat((p * rstd, torch.ones_like(rstd)), dim=-1), uv)
        return x + ffn.gated(pre)


class InitialRows(nn.Module):
    """Each session's unit rows as first drawn, one buffer per session key, saved with the weights, so
    an analysis can take away the random start that training moved them from (docs/results.md 7.3:
    after a short training the draw hides what was learned). A checkpoint written before they were
    kept has none; loading it leaves none rather than failing."""

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        for key in [k for k in self._buffers if prefix + k not in state_dict]:
            del self._buffers[key]
        super()._load_from_state_dict(state_dict, prefix, *args)


class SessionEmbeddings(nn.Module):
    """Unit, session (and dataset) tables. The unit table is conceptually one row per unit over
    all sessions; it is stored per session so adding a session never touches existing rows."""

    def __init__(self, dim: int, std: float, with_dataset: bool, query_dataset: bool = True):
        super().__init__()
        self.dim, self.std, self.with_dataset = dim, std, with_dataset
        self.query_dataset = with_dataset and query_dataset
        self.unit = nn.ParameterDict()
        self.initial = InitialRows()  # the unit rows as drawn
        self.session = nn.ParameterDict()
        self.dataset = nn.ParameterDict()
        self._dataset_key: dict[str, str] = {}  # dataset id -> key
        self._session_dataset: dict[str, str] = {}  # session key -> dataset key

    def _fresh(self, *shape: int) -> nn.Parameter:
        return nn.Parameter(torch.randn(*shape) * self.std)

    def add(self, key: str, spec: SessionSpec) -> None:
        self.unit[key] = self._fresh(spec.n_units, self.dim)
        self.initial.register_buffer(key, self.unit[key].detach().clone())
        self.session[key] = self._fresh(self.dim)
        if self.with_dataset:
            if spec.dataset not in self._dataset_key:
                dkey = f"d{len(self._dataset_key)}"
                self._dataset_key[spec.dataset] = dkey
                self.dataset[dkey] = self._fresh(self.dim)
            self._session_dataset[key] = self._dataset_key[spec.dataset]

    def session_params(self, key: str) -> list[nn.Parameter]:
        """A session's unit and session rows, plus its dataset row if no other session shares it."""
        params = [self.unit[key], self.session[key]]
        dkey = self._session_dataset.get(key)
        if dkey is not None and list(self._session_dataset.values()).count(dkey) == 1:
            params.append(self.dataset[dkey])
        return params

    def _unit_session(self, key: str) -> Tensor:
        return self.unit[key] + self.session[key]

    def query(self, key: str) -> Tensor:
        """Decoder queries: unit + session (+ dataset, as in the reference) embedding, (N, d)."""
        return self.token_bias(key) if self.query_dataset else self._unit_session(key)

    def token_bias(self, key: str) -> Tensor:
        """Added to every token of a unit: unit + session (+ dataset) embedding, (N, d)."""
        q = self._unit_session(key)
        return q + self.dataset[self._session_dataset[key]] if self.with_dataset else q


class PopulationForecaster(BaseForecaster):
    """Shared body of POCO-family models: embeddings + Perceiver encoder + a per-unit readout.

    Subclasses implement ``_build_readout`` and ``_readout(x_units, e, hidden)`` where
    x_units is (B, n, C), e the encoder output (B, n, d); readouts run in unit slices."""

    config: EncoderConfig
    traceable: ClassVar[bool] = True  # no control flow on tensor values in eval mode (models/traced.py)

    def _build(self, sessions: list[SessionSpec]) -> None:
        c = self.config
        c.resolve(sessions)
        self.embeddings = SessionEmbeddings(c.d_model, c.embed_std, bool(c.dataset_embedding), c.query_dataset_embedding)
        self.encoder = PerceiverEncoder(c)
        self._build_readout()

    def _build_readout(self) -> None:
        raise NotImplementedError

    def _readout(self, x_units: Tensor, e: Tensor, hidden: Tensor | None) -> Tensor:
        raise NotImplementedError

    def _init_session(self, key: str, spec: SessionSpec) -> None:
        self.embeddings.add(key, spec)

    def _embedding_params(self) -> list[nn.Parameter]:
        return list(self.embeddings.parameters())

    def _session_params(self, key: str) -> list[nn.Parameter]:
        return self.embeddings.session_params(key)

    def unit_embeddings(self, session: str) -> Tensor:
        return self.embeddings.unit[self.session_key(session)].detach()

    def initial_unit_embeddings(self, session: str) -> Tensor | None:
        return self.embeddings.initial._buffers.get(self.session_key(session))

    def _cached_query_terms(self, key: str, queries: Tensor) -> QueryTerms | None:
        """A session's decoder query terms, kept between forecasts (they depend on the weights
        only) while the weights are unchanged; None where they would take more than
        QUERY_CACHE_ELEMENTS or under autocast (then they are computed per slice of units, as in training)."""
        if (queries.shape[0] * self.encoder.dec_ffn.up.out_features > QUERY_CACHE_ELEMENTS
                or torch.is_autocast_enabled(queries.device.type)):  # terms made under autocast are bf16
            return None
        emb, enc = self.embeddings, self.encoder  # everything query_terms reads
        version = (queries.dtype, tensors_key([emb.unit[key], emb.session[key], *emb.dataset.values(),
                                               *enc.dec_atn.parameters(), *enc.dec_ffn.parameters(), enc.query_cos]))
        cache = self.__dict__.setdefault("_query_cache", {})
        hit = cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        terms = self.encoder.query_terms(queries)
        cache[key] = (version, terms)
        return terms

    def forward(
        self, xs: list[Tensor], sessions: list[str], hidden: list[Tensor] | None = None
    ) -> list[Tensor]:
        """``hidden``: optional per-session precomputed MLP hidden layers (see POCO.hidden_states)."""
        self._check(xs, sessions)
        hs: list[Tensor | None] = list(hidden) if hidden is not None else [None] * len(xs)
        return [self._forward_session(x, self.session_key(s), h) for x, s, h in zip(xs, sessions, hs)]

    def _forward_session(self, x: Tensor, key: str, hidden: Tensor | None) -> Tensor:
        # one frame per session: the chunk closure must not see later sessions' tensors
        # (checkpointed slices are re-run during backward)
        x_units = x.transpose(1, 2).contiguous()  # unit-major rows: the matmuls are faster
        bias, queries = self.embeddings.token_bias(key), self.embeddings.query(key)
        p = self.config.unit_dropout
        if self.training and p > 0:  # the unit row is dropped (session/dataset rows kept) in both places
            unit = self.embeddings.unit[key]
            drop = (torch.rand(unit.shape[0], 1, device=unit.device) < p).to(unit.dtype)
            bias, queries = bias - drop * unit, queries - drop * unit
        if torch.is_grad_enabled() and x.shape[0] * x.shape[2] > self.config.chunk_elements:
            # whole-brain sizes: keep only the input for backward, not every token's activations
            latents = checkpoint(self.encoder.encode, x_units, bias, use_reentrant=False)
        else:
            latents = self.encoder.encode(x_units, bias)
        cached = None if self.training or torch.is_grad_enabled() else self._cached_query_terms(key, queries)

        def per_units(sl: slice) -> Tensor:
            terms = cached.units(sl) if cached is not None else self.encoder.query_terms(queries[sl], x.shape[0] > 1)
            e = self.encoder.decode(latents, terms)
            return self._readout(x_units[:, sl], e, None if hidden is None else hidden[:, sl])

        b = max(1, x.shape[0])
        limit, piece = max(1, self.config.chunk_elements // b), max(1, self.config.slice_elements // b)
        return over_unit_chunks(per_units, x.shape[2], limit, piece).transpose(1, 2)
