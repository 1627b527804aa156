"""Forecast metrics (prediction score, MSE, MAE, per-step error) and the validation pass.

The prediction score of a session is 1 - MSE_model / MSE_copy on its windows, where the copy
baseline repeats the last context frame; a dataset's score is the unweighted mean over its
sessions (POCO_SPEC.md). Errors are accumulated as running sums so evaluation streams in
batches of any size and the copy baseline comes for free from the same windows. The training
loop validates with these; `poco_core.analysis.evaluate` reports them.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any, Iterable

import numpy as np
import torch

from poco_core.models.inference import predict
from poco_core.training.sampling import evenly_spaced, gather_windows

METRIC_COLUMNS = ("score", "mse", "mae", "pearson")


def copy_forecast(context: torch.Tensor, horizon: int) -> torch.Tensor:
    """(B, C, N) -> (B, P, N): the last context frame repeated."""
    return context[:, -1:, :].expand(-1, horizon, -1)


def prediction_score(mse: float, copy_mse: float) -> float:
    """1 - mse / copy_mse; NaN when the copy baseline is exact (score undefined)."""
    return 1.0 - mse / copy_mse if copy_mse > 0 else math.nan


def mean_of(values: Iterable[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


class ErrorAccumulator:
    """Running per-step sums of squared and absolute error for a model and the copy baseline."""

    def __init__(self, horizon: int):
        self.horizon = horizon
        self.sums = {k: np.zeros(horizon) for k in ("sq", "abs", "copy_sq", "copy_abs")}
        self.count = 0  # elements per step (windows x units)
        self.windows = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor, last: torch.Tensor) -> None:
        """pred/target (B, P, N) and the last context frame (B, N)."""
        pred, target, last = pred.double(), target.double(), last.double()
        err = pred - target
        copy_err = last[:, None, :] - target
        for key, e in (("sq", err.square()), ("abs", err.abs()), ("copy_sq", copy_err.square()), ("copy_abs", copy_err.abs())):
            self.sums[key] += e.sum(dim=(0, 2)).cpu().numpy()
        self.count += target.shape[0] * target.shape[2]
        self.windows += target.shape[0]

    def metrics(self) -> dict[str, Any]:
        n = max(self.count, 1)
        per_step = self.sums["sq"] / n
        copy_per_step = self.sums["copy_sq"] / n
        mse, copy_mse = float(per_step.mean()), float(copy_per_step.mean())
        return {
            "score": prediction_score(mse, copy_mse),
            "mse": mse,
            "mae": float(self.sums["abs"].mean() / n),
            "per_step_mse": per_step.tolist(),
            "copy_mse": copy_mse,
            "copy_mae": float(self.sums["copy_abs"].mean() / n),
            "copy_per_step_mse": copy_per_step.tolist(),
            "n_windows": self.windows,
        }


class CorrelationAccumulator:
    """CalM's forecasting metric, streamed: Pearson r between forecast and actual of each
    (window, unit) over the horizon, averaged over units, then over windows (CALM_SPEC.md §6).
    A unit whose forecast or actual is constant over the horizon has no r and is skipped, so
    the copy forecast has none (NaN)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.windows = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """pred/target (B, P, N)."""
        p = pred.double() - pred.double().mean(1, keepdim=True)
        t = target.double() - target.double().mean(1, keepdim=True)
        den = p.norm(dim=1) * t.norm(dim=1)
        r = torch.where(den > 1e-12, (p * t).sum(1) / den.clamp_min(1e-300), torch.nan)  # (B, N)
        per_window = r.nanmean(1)
        ok = ~per_window.isnan()
        self.total += float(per_window[ok].sum())
        self.windows += int(ok.sum())

    def metrics(self) -> dict[str, float]:
        return {"pearson": self.total / self.windows if self.windows else math.nan}


def session_metrics(pred: torch.Tensor, target: torch.Tensor, context: torch.Tensor) -> dict[str, Any]:
    """Metrics for one session's windows held in memory: pred/target (B, P, N), context (B, C, N)."""
    acc, corr = ErrorAccumulator(target.shape[1]), CorrelationAccumulator()
    acc.update(pred, target, context[:, -1, :])
    corr.update(pred, target)
    return acc.metrics() | corr.metrics()


def summarise(sessions: dict[str, dict[str, Any]]) -> tuple[dict[str, dict], dict[str, float]]:
    """Per-dataset and overall unweighted means over sessions of score/MSE/MAE (copy too)."""
    keys = ("score", "mse", "mae", "copy_mse", "copy_mae", "pearson")
    by_ds: dict[str, list[dict]] = {}
    for m in sessions.values():
        by_ds.setdefault(m.get("dataset", "default"), []).append(m)
    datasets = {ds: {k: mean_of(m.get(k, math.nan) for m in ms) for k in keys} | {"n_sessions": len(ms)}
                for ds, ms in by_ds.items()}
    overall = {k: mean_of(m.get(k, math.nan) for m in sessions.values()) for k in keys}
    return datasets, overall



def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on CUDA when asked; a no-op elsewhere."""
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def evaluate_windows(
    model: torch.nn.Module,
    data,
    split: str = "test",
    *,
    batch_size: int = 256,
    stride: int = 1,
    max_windows: int | None = None,
    device: torch.device | None = None,
    bf16: bool = False,
    hidden_cache: dict | None = None,
    precision: str = "fp32",
) -> dict[str, dict[str, Any]]:
    """Per-session metrics of `model` on `split` windows of PreparedData (keyed by session name).

    `precision`: fp32 (default: reported scores are exact), or the arithmetic forecasts use
    (``auto``/``bf16``, see `poco_core.models.inference`), to measure what it costs.

    `hidden_cache` (a dict the caller keeps; models with ``hidden_states`` only): the windows and
    their MLP hidden layers are stored there on the first call and reused after, which is exact
    while the MLP is frozen (embedding-only finetuning validates the same windows every time)."""
    device = device or next(iter(model.parameters()), torch.empty(0)).device
    ctx, hor = model.config.context, model.config.horizon
    was_training = model.training
    model.eval()
    out: dict[str, dict[str, Any]] = {}

    def batches(windows, idx: np.ndarray, with_hidden: bool):
        for i in range(0, len(idx), batch_size):
            w = torch.from_numpy(gather_windows(windows, idx[i:i + batch_size])).to(device)
            yield w, model.hidden_states([w[:, :ctx]])[0] if with_hidden else None

    try:
        for sd in data.sessions:
            windows = sd.windows(split, ctx + hor, stride)
            acc, corr = ErrorAccumulator(hor), CorrelationAccumulator()
            idx_all = evenly_spaced(len(windows), max_windows)
            if hidden_cache is None:
                todo = batches(windows, idx_all, False)
            else:
                if sd.session not in hidden_cache:
                    hidden_cache[sd.session] = list(batches(windows, idx_all, True))
                todo = hidden_cache[sd.session]
            for w, hidden in todo:
                extra = {} if hidden is None else {"hidden": [hidden]}
                if precision != "fp32":
                    (pred,) = predict(model, [w[:, :ctx]], [sd.session], precision)
                else:
                    with autocast(device, bf16):
                        (pred,) = model([w[:, :ctx]], [sd.session], **extra)
                acc.update(pred.float(), w[:, ctx:], w[:, ctx - 1])
                corr.update(pred.float(), w[:, ctx:])
            out[sd.session] = {"dataset": sd.dataset, **acc.metrics(), **corr.metrics()}
    finally:
        model.train(was_training)
    return out
