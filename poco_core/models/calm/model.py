"""`calm` in the registry: CalM (Xu et al., ICML 2026) behind the project's forecaster interface.

Training runs two stages inside `loss`, counted by the `stage_step` buffer: **nq** (the Neural
Quantizer on single-neuron traces of the windows) for `nq_steps` steps, then **dat** (the
quantizer frozen and in eval mode, the Dual-Axis Transformer on its tokens). During nq
`forward` returns the copy-last forecast so validation stays honest; the training loop reads
`training_stage` to emit `stage` events and restart best-checkpoint tracking when dat starts.
Forecasts roll out tokens autoregressively and decode [context + generated] tokens with the
quantizer's decoder, returning the frames after the context.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from poco_core.models.base import BaseForecaster, SessionSpec
from poco_core.models.calm.config import CalMConfig
from poco_core.models.calm.quantizer import NeuralQuantizer
from poco_core.models.calm.transformer import (
    DualAxisTransformer,
    neighbour_replace,
    neighbour_table,
    scheduled_sampling,
)
from poco_core.models.registry import register


class SessionTables(nn.Module):
    """A session's neuron embeddings (N, d) and its session embedding (d), N(0, 0.02²)."""

    def __init__(self, n_units: int, d: int):
        super().__init__()
        self.unit = nn.Parameter(torch.randn(n_units, d) * 0.02)
        self.session = nn.Parameter(torch.randn(d) * 0.02)


@register("calm")
class CalM(BaseForecaster):
    """Tokenised, dual-axis autoregressive forecaster; see shared/CALM_SPEC.md."""

    config_class = CalMConfig
    config: CalMConfig

    def _build(self, sessions: list[SessionSpec]) -> None:
        self.nq = NeuralQuantizer(self.config)
        self.dat = DualAxisTransformer(self.config)
        self.register_buffer("stage_step", torch.zeros((), dtype=torch.long))
        self.step_stats: dict[str, float] = {}

    def _init_session(self, key: str, spec: SessionSpec) -> None:
        self.per_session[key] = SessionTables(spec.n_units, self.config.d_model)

    def _mlp_params(self) -> list[nn.Parameter]:
        return list(self.dat.head.parameters())

    def unit_embeddings(self, session: str) -> Tensor:
        return self.per_session[self.session_key(session)].unit.detach()

    # -- stages ------------------------------------------------------------------
    @property
    def stage(self) -> str:
        return "nq" if int(self.stage_step) < self.config.nq_steps else "dat"

    def training_stage(self, kind: str = "train") -> dict[str, Any]:
        """The stage the next training step runs: name, steps it has left (None: open-ended) and
        whether best-checkpoint tracking restarts when it begins."""
        if kind != "train":
            return {"stage": "adapt", "steps_left": None, "reset_best": False}
        if self.stage == "nq":
            return {"stage": "nq", "steps_left": self.config.nq_steps - int(self.stage_step), "reset_best": False}
        return {"stage": "dat", "steps_left": None, "reset_best": True}

    @torch.no_grad()
    def stage_report(self) -> dict[str, Any]:
        """The `codebook` event: each code's decoded shape (K x L) and its usage share (EMA)."""
        was = self.nq.training
        self.nq.eval()
        protos = self.nq.prototypes().float().cpu().tolist()
        self.nq.train(was)
        return {"type": "codebook", "prototypes": protos, "usage": self.nq.usage.float().cpu().tolist()}

    # -- tokens ------------------------------------------------------------------
    def tokens(self, x: Tensor) -> Tensor:
        """(B, T, N) traces -> (B, N, ⌊T/L⌋) token ids (the left frames beyond a multiple of L are cropped)."""
        b, t, n = x.shape
        t_d = t // self.config.window
        y = x[:, t - t_d * self.config.window :].transpose(1, 2).reshape(b * n, -1)
        was = self.nq.training
        self.nq.eval()
        with torch.no_grad():
            z = self.nq.tokenize(y.to(self.nq.codebook.dtype))
        self.nq.train(was)
        return z.view(b, n, t_d)

    def _rows(self, session: str, units: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The session's unit rows (all, or those `units` selects) and its session row."""
        tables: SessionTables = self.per_session[self.session_key(session)]  # type: ignore[assignment]
        return (tables.unit if units is None else tables.unit[units]), tables.session

    def logits(self, z: Tensor, session: str, units: Tensor | None = None) -> Tensor:
        """(B, N, T) ids -> (B, N, T, K) next-token logits; `units` selects rows of the unit table."""
        return self.dat(z, *self._rows(session, units))

    # -- forecasting -------------------------------------------------------------------
    def forward(self, xs: list[Tensor], sessions: list[str]) -> list[Tensor]:
        self._check(xs, sessions)
        if int(self.stage_step) <= self.config.nq_steps:  # no transformer step yet (also the validation
            # right after the last quantizer step): forecast copy-last
            return [x[:, -1:].expand(-1, self.config.horizon, -1) for x in xs]
        c = self.config
        return [self.rollout(x, s, c.horizon, c.n_samples, c.temperature, c.top_k) for x, s in zip(xs, sessions)]

    @torch.no_grad()
    def rollout(self, context: Tensor, session: str, n_frames: int, n_samples: int = 1,
                temperature: float = 0.0, top_k: int = 0, cache: bool = True) -> Tensor:
        """(B, C, N) -> (B, n_frames, N): greedy (temperature 0) or sampled token rollout,
        detokenised; sampled rollouts are averaged after decoding. With `cache` each generated
        step attends to cached keys/values of the earlier ones (same forecasts, less compute);
        without, every step reruns the transformer over the whole sequence."""
        b, _, n = context.shape
        z0 = self.tokens(context)
        start = z0.shape[-1] * self.config.window
        steps = math.ceil(n_frames / self.config.window)
        rows = self._rows(session)
        was = self.training
        self.eval()  # dropout off in the transformer and the decoder, as the cache assumes
        prefill = self.dat.extend(z0, *rows, None) if cache else None
        out = 0.0
        runs = 1 if temperature <= 0 else max(n_samples, 1)
        for _ in range(runs):
            z = z0
            logits, kv = prefill if prefill is not None else (self.dat(z0, *rows), None)
            for i in range(steps):
                nxt = self.choose(logits[:, :, -1], temperature, top_k)[..., None]
                z = torch.cat((z, nxt), dim=-1)
                if i + 1 < steps:
                    logits, kv = self.dat.extend(nxt, *rows, kv) if cache else (self.dat(z, *rows), None)
            y = self.nq.decode_tokens(z.reshape(b * n, -1)).view(b, n, -1)
            out = out + y[:, :, start : start + n_frames]
        self.train(was)
        return (out / runs).transpose(1, 2).to(context.dtype)

    @staticmethod
    def choose(logits: Tensor, temperature: float, top_k: int) -> Tensor:
        if temperature <= 0:
            return logits.argmax(-1)
        logits = logits / temperature
        if top_k > 0:
            kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, -float("inf"))
        probs = logits.softmax(-1)
        return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1).view(probs.shape[:-1])

    # -- training ----------------------------------------------------------------------
    def loss(self, windows: list[Tensor], sessions: list[str]) -> Tensor:
        c = self.config
        self._check(windows, sessions, c.context + c.horizon)
        if self.stage == "nq":
            loss = self._nq_loss(windows)
        else:
            loss = self._dat_loss(windows, sessions)
        if self.training:
            self.stage_step.add_(1)
        return loss

    def _nq_loss(self, windows: list[Tensor]) -> Tensor:
        c = self.config
        traces = torch.cat([w.transpose(1, 2).reshape(-1, w.shape[1]) for w in windows])
        traces = traces[:, traces.shape[1] % c.window :]
        if len(traces) > c.nq_traces_per_step:
            traces = traces[torch.randperm(len(traces), device=traces.device)[: c.nq_traces_per_step]]
        self.nq.train(self.training)
        loss, self.step_stats = self.nq.loss(traces.float(), int(self.stage_step))
        return loss

    def _dat_loss(self, windows: list[Tensor], sessions: list[str]) -> Tensor:
        c = self.config
        table = neighbour_table(self.nq.codebook.detach(), c.nr_k)
        total, count, correct = 0.0, 0, 0
        parts = {"ce": 0.0, "ce_ss": 0.0, "ce_nr": 0.0}
        for w, s in zip(windows, sessions):
            units = None
            if self.training and w.shape[2] > c.max_train_units:
                units = torch.randperm(w.shape[2], device=w.device)[: c.max_train_units].sort().values
                w = w[:, :, units]
            z = self.tokens(w)
            inp, tgt = z[..., :-1], z[..., 1:]
            clean = self.logits(inp, s, units)
            pred_next = clean.detach().argmax(-1)
            passes = {"ce": (clean, 1.0)}
            if c.w_ss:
                passes["ce_ss"] = (self.logits(scheduled_sampling(inp, pred_next, c.ss_prob, c.ss_block), s, units), c.w_ss)
            if c.w_nr:
                passes["ce_nr"] = (self.logits(neighbour_replace(inp, table, c.nr_prob), s, units), c.w_nr)
            n = tgt.numel()
            for key, (lg, weight) in passes.items():
                ce = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tgt.reshape(-1))
                parts[key] += float(ce.detach()) * n
                total = total + weight * ce * n
            count += n
            correct += int((pred_next == tgt).sum())
        self.step_stats = {k: v / count for k, v in parts.items()} | {"token_acc": correct / count}
        return total / count
