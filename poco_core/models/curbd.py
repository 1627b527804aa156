"""The ``curbd`` forecaster (alias ``pinning`` with plastic_fraction < 1): a data-constrained RNN per session.

Not gradient-trained: ``fit_session`` fits J for one session by FORCE-RLS on its training blocks
(resets at every block start and every C + P frames, so training matches forecasting), choosing the
number of runs and P0 by the validation score (1 - MSE / MSE_copy) of free-run windows, with early
stopping. ``forward`` scales the context, starts from phi^-1 of the last frame (or runs through the
context, ``init="burn_in"``) with h = 0 and rolls the network forward P frames.

It is expected to forecast *worse than copy-last* (shared/CIRCUIT_SPEC.md section 9); its value is
the fitted circuit. Report it against copy, always.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from poco_core.base.events import CancelLike, Event
from poco_core.models.base import BaseConfig, BaseForecaster, SessionSpec
from poco_core.models.circuit_rnn import CircuitConfig, fit_rnn
from poco_core.models.registry import register

PERCENTILE, CLIP = 99.9, 0.999


@dataclass
class CURBDConfig(BaseConfig):
    """Circuit settings in frames (the forecaster sees no sampling rate): tau in frames, f sub-steps."""

    tau_frames: float = 2.0
    dt_factor: int = 5
    g: float = 1.5
    plastic_fraction: float = 1.0
    amp_in: float = 0.01
    p0_grid: list[float] = field(default_factory=lambda: [1.0, 0.1, 0.03])
    max_runs: int = 20
    patience: int = 3
    max_val_windows: int = 128
    init: Literal["last", "burn_in"] = "last"
    seed: int = 0


class _SessionCircuit(nn.Module):
    """One session's fitted network as buffers (saved in the state dict; no gradients)."""

    def __init__(self, n: int):
        super().__init__()
        self.register_buffer("J", torch.zeros(n, n))
        self.register_buffer("scale", torch.ones(()))


@register("curbd")
class CURBD(BaseForecaster):
    config_class = CURBDConfig

    def _init_session(self, key: str, spec: SessionSpec) -> None:
        self.per_session[key] = _SessionCircuit(spec.n_units)

    def circuit_config(self, p0: float, runs: int) -> CircuitConfig:
        c = self.config
        return CircuitConfig(tau_s=c.tau_frames, g=c.g, plastic_fraction=c.plastic_fraction, p0=p0, n_train=runs,
                             free_every=10**9, amp_in=c.amp_in, tau_wn=c.tau_frames,
                             reset_every=c.context + c.horizon, dt_factor=c.dt_factor, seed=c.seed, device="cpu")

    # -- fitting -------------------------------------------------------------------------------
    def fit_session(self, session_data: Any, cancel: CancelLike | None = None) -> Iterator[Event]:
        """Fit one session (a ``SessionData``); yields ``stage`` and ``circuit_run`` events."""
        sd = session_data
        net = self.per_session[self.session_key(sd.session)]
        length = self.config.context + self.config.horizon
        blocks = [sd.values[a:a + (b - a) // length * length] for a, b in sd.ranges["train"] if b - a >= length]
        train = np.concatenate(blocks).astype(np.float64)
        scale = float(np.percentile(np.abs(train), PERCENTILE)) or 1.0
        d = np.clip(train / scale, -CLIP, CLIP)
        val = self._val_windows(sd, length)
        net.scale.fill_(scale)
        best = (-math.inf, None, None, 0)
        yield {"type": "stage", "stage": "select", "session": sd.session}
        for p0 in self.config.p0_grid:
            state, since_best = None, 0
            for run in range(1, self.config.max_runs + 1):
                gen = fit_rnn(d, 1.0, self.circuit_config(p0, run), state=state, cancel=cancel, final_free=False)
                st, _ = _drain(gen)
                state = st.to_dict()
                net.J.copy_(st.J.float())
                score = self.val_score(val, sd.session)
                yield {"type": "circuit_run", "session": sd.session, "p0": p0, "run": run, "val_score": score}
                if score > best[0]:
                    best, since_best = (score, st.J.float().clone(), p0, run), 0
                else:
                    since_best += 1
                    if since_best >= self.config.patience:
                        break
        net.J.copy_(best[1])
        yield {"type": "stage", "stage": "selected", "session": sd.session, "val_score": best[0], "p0": best[2], "runs": best[3]}

    def _val_windows(self, sd: Any, length: int) -> Tensor:
        ds = sd.windows("val", length)
        n = len(ds)
        idx = np.linspace(0, n - 1, min(n, self.config.max_val_windows)).astype(int) if n else []
        return torch.stack([torch.as_tensor(ds[i]) for i in idx]) if n else torch.empty(0, length, sd.values.shape[1])

    @torch.no_grad()
    def val_score(self, windows: Tensor, session: str) -> float:
        """1 - MSE / MSE_copy of the forecasts of (B, C + P, N) windows."""
        if len(windows) == 0:
            return 0.0
        c = self.config.context
        pred = self([windows[:, :c]], [session])[0]
        target = windows[:, c:]
        copy = windows[:, c - 1:c].expand_as(target)
        return float(1 - ((pred - target) ** 2).mean() / ((copy - target) ** 2).mean().clamp_min(1e-12))

    # -- forecasting ---------------------------------------------------------------------------
    def forward(self, xs: list[Tensor], sessions: list[str]) -> list[Tensor]:
        self._check(xs, sessions)
        return [self.rollout(x, self.per_session[self.session_key(s)]) for x, s in zip(xs, sessions)]

    def rollout(self, x: Tensor, net: _SessionCircuit) -> Tensor:
        """(B, C, N) -> (B, P, N): h = 0, P * f Euler steps batched over B, rates read every f steps."""
        c = self.config
        j = net.J.to(x.dtype)
        d = (x / net.scale).clamp(-CLIP, CLIP)
        a = 1.0 / (c.dt_factor * c.tau_frames)
        state = torch.atanh(d[:, 0 if c.init == "burn_in" else -1])  # (B, N)

        def step(s: Tensor) -> Tensor:
            return s + a * (torch.tanh(s) @ j.T - s)

        if c.init == "burn_in":
            for _ in range((x.shape[1] - 1) * c.dt_factor):
                state = step(state)
        out = []
        for _ in range(c.horizon):
            for _ in range(c.dt_factor):
                state = step(state)
            out.append(torch.tanh(state))
        return torch.stack(out, dim=1) * net.scale


def _drain(gen: Iterator[Event]) -> Any:
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


@dataclass
class PINningConfig(CURBDConfig):
    plastic_fraction: float = 0.1


@register("pinning")
class PINning(CURBD):
    """CURBD's forecaster with a plastic fraction p < 1 (default 0.1, the PINning demo's)."""

    config_class = PINningConfig
