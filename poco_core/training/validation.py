"""Forecast metrics (prediction score, MSE, MAE, per-step error) and the validation pass.

The prediction score of a session is 1 - MSE_model / MSE_copy on its windows, where the copy
baseline repeats the last context frame; a dataset's score is the unweighted mean over its
sessions (POCO_SPEC.md). Errors are accumulated as running sums so evaluation streams in
batches of any size and the copy baseline comes for free from the same windows. The training
loop validates with these; `poco_core.analysis.evaluate` reports them.

Two more baselines keep the score honest (on noisy traces copy is a weak reference, on
denoised ones a very strong one), reported beside it on the same windows:
- mean: predict every future step as the unit's mean over the session's *training split* in
  model space (0 for z-scored units fitted on the train split, about 0 with ``fit_on="all"``);
  ``mean_score = 1 - mse / mean_mse``.
- smoothed copy: predict every future step as the mean of the last ``SMOOTH_FRAMES`` (8) context
  frames (all of them if the context is shorter); ``smooth_score = 1 - mse / smooth_mse``.
`diagnose` turns the three into a sentence when the score against copy would mislead.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any, Iterable

import numpy as np
import torch

from poco_core.models.inference import predict
from poco_core.training.sampling import evenly_spaced, gather_windows

METRIC_COLUMNS = ("score", "mean_score", "smooth_score", "mse", "mae", "pearson")
SMOOTH_FRAMES = 8  # frames the smoothed-copy baseline averages
# "already denoised": copy MSE under this fraction of the mean baseline's, and smoothing makes copy worse
DENOISED_COPY_RATIO = 0.35
# baselines (table name, metric prefix) reported beside every model
BASELINES = (("copy", "copy_"), ("mean", "mean_"), ("smoothed copy", "smooth_"))


def copy_forecast(context: torch.Tensor, horizon: int) -> torch.Tensor:
    """(B, C, N) -> (B, P, N): the last context frame repeated."""
    return context[:, -1:, :].expand(-1, horizon, -1)


def prediction_score(mse: float, copy_mse: float) -> float:
    """1 - mse / copy_mse; NaN when the copy baseline is exact (score undefined)."""
    return 1.0 - mse / copy_mse if copy_mse > 0 else math.nan


def mean_of(values: Iterable[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


def smoothed_last(context: torch.Tensor) -> torch.Tensor:
    """(B, C, N) -> (B, N): the smoothed-copy forecast, the mean of the last SMOOTH_FRAMES frames."""
    return context[:, -SMOOTH_FRAMES:, :].mean(dim=1)


def diagnose(m: dict[str, Any]) -> str | None:
    """A sentence when the score against copy misleads, with what to do; None when it reads as it is.

    Noisy: copy is worse than the mean. Already denoised: copy is close (under
    DENOISED_COPY_RATIO of the mean's MSE) and averaging the last frames makes it worse, so
    there is no noise left to average away."""
    copy, mean, smooth = m.get("copy_mse", math.nan), m.get("mean_mse", math.nan), m.get("smooth_mse", math.nan)
    if not (math.isfinite(copy) and math.isfinite(mean)) or mean <= 0:
        return None
    if copy < DENOISED_COPY_RATIO * mean and smooth > copy:
        return (f"copy is nearly exact (MSE {copy:.3g} vs {mean:.3g} for the mean) and smoothing only makes it "
                f"worse ({smooth:.3g}): the traces hold little frame-to-frame noise, as if already denoised (CaImAn's "
                "C is), so the score against copy is a hard reference; judge by mean_score, and with CaImAn forecast "
                "F_dff rather than C")
    if copy > mean:
        return (f"copy is worse than predicting the mean (MSE {copy:.3g} vs {mean:.3g}; smoothed copy "
                f"{smooth:.3g}): the traces are noisy at this rate, so the score against copy mostly rewards "
                "denoising; judge by smooth_score, or low-pass filter (--filter lowpass) or bin in time "
                "(--target-fs) before training")
    return None


class ErrorAccumulator:
    """Running per-step sums of squared and absolute error for a model and the three baselines
    (copy, mean, smoothed copy; see the module docstring)."""

    PARTS = ("", "copy_", "mean_", "smooth_")

    def __init__(self, horizon: int, unit_mean: torch.Tensor | None = None):
        """`unit_mean` (N,): each unit's training-split mean in model units (default 0)."""
        self.horizon = horizon
        self.unit_mean = unit_mean
        self.sums = {f"{p}{k}": np.zeros(horizon) for p in self.PARTS for k in ("sq", "abs")}
        self.count = 0  # elements per step (windows x units)
        self.windows = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor, last: torch.Tensor,
               smooth: torch.Tensor | None = None) -> None:
        """pred/target (B, P, N), the last context frame (B, N) and the smoothed-copy forecast
        (B, N; `smoothed_last(context)`, defaults to `last`)."""
        target = target.double()
        mean = torch.zeros(target.shape[2], dtype=torch.float64, device=target.device) if self.unit_mean is None \
            else self.unit_mean.to(target.device, torch.float64)
        guesses = (pred.double(), last.double()[:, None, :], mean[None, None, :],
                   (last if smooth is None else smooth).double()[:, None, :])
        for part, guess in zip(self.PARTS, guesses):
            err = guess - target
            self.sums[f"{part}sq"] += err.square().sum(dim=(0, 2)).cpu().numpy()
            self.sums[f"{part}abs"] += err.abs().sum(dim=(0, 2)).cpu().numpy()
        self.count += target.shape[0] * target.shape[2]
        self.windows += target.shape[0]

    def metrics(self) -> dict[str, Any]:
        n = max(self.count, 1)
        out: dict[str, Any] = {}
        for part in self.PARTS:
            per_step = self.sums[f"{part}sq"] / n
            out.update({f"{part}mse": float(per_step.mean()), f"{part}mae": float(self.sums[f"{part}abs"].mean() / n),
                        f"{part}per_step_mse": per_step.tolist()})
        del out["mean_per_step_mse"], out["smooth_per_step_mse"]
        out.update(score=prediction_score(out["mse"], out["copy_mse"]),
                   mean_score=prediction_score(out["mse"], out["mean_mse"]),
                   smooth_score=prediction_score(out["mse"], out["smooth_mse"]), n_windows=self.windows,
                   n_elements=self.count * self.horizon)
        out["diagnosis"] = diagnose(out)
        return out


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
    """Metrics for one session's windows held in memory: pred/target (B, P, N), context (B, C, N);
    the mean baseline predicts 0 (z-scored units)."""
    acc, corr = ErrorAccumulator(target.shape[1]), CorrelationAccumulator()
    acc.update(pred, target, context[:, -1, :], smoothed_last(context))
    corr.update(pred, target)
    return acc.metrics() | corr.metrics()


SUMMARY_KEYS = ("score", "mean_score", "smooth_score", "mse", "mae", "copy_mse", "copy_mae",
                "mean_mse", "mean_mae", "smooth_mse", "smooth_mae", "pearson")


def summarise(sessions: dict[str, dict[str, Any]]) -> tuple[dict[str, dict], dict[str, Any]]:
    """Per-dataset and overall unweighted means over sessions of scores/MSE/MAE (baselines too),
    each with its `diagnosis`."""
    def mean_metrics(ms: list[dict]) -> dict[str, Any]:
        out: dict[str, Any] = {k: mean_of(m.get(k, math.nan) for m in ms) for k in SUMMARY_KEYS}
        return out | {"diagnosis": diagnose(out)}

    by_ds: dict[str, list[dict]] = {}
    for m in sessions.values():
        by_ds.setdefault(m.get("dataset", "default"), []).append(m)
    datasets = {ds: mean_metrics(ms) | {"n_sessions": len(ms)} for ds, ms in by_ds.items()}
    return datasets, mean_metrics(list(sessions.values()))


def train_means(sd) -> torch.Tensor:
    """(N,) each unit's mean over the session's training split in model units (the mean baseline)."""
    total, count = np.zeros(sd.values.shape[1]), 0
    for lo, hi in sd.ranges["train"]:
        total += np.asarray(sd.values[lo:hi], dtype=np.float64).sum(axis=0)
        count += hi - lo
    return torch.from_numpy(total / max(count, 1))


def pooled_mse(sessions: dict[str, dict[str, Any]]) -> float:
    """MSE over every element of every session (the reference's validation criterion; a session
    weighs by its windows x units, unlike ``summarise``'s per-session mean)."""
    n = sum(m["n_elements"] for m in sessions.values())
    return sum(m["mse"] * m["n_elements"] for m in sessions.values()) / n if n else math.nan


def windows_per_horizon(n_windows: int, n_used: int, horizon: int, stride: int) -> int:
    """Consecutive windows, of the `n_used` evaluated out of `n_windows` at `stride` frames (spread
    evenly, `sampling.evenly_spaced`), whose targets fall within one horizon of each other: the block
    `paired_improvement` needs. Windows spread further apart than the horizon are blocks of one."""
    spacing = stride * max(1.0, (n_windows - 1) / max(1, n_used - 1))
    return max(1, math.ceil(horizon / spacing))


def paired_improvement(base: dict[str, np.ndarray], new: dict[str, np.ndarray], units: dict[str, int],
                       block: int | dict[str, int]) -> tuple[float, float]:
    """How much lower `new`'s pooled MSE is than `base`'s on the same windows, and its standard error.

    `base`/`new` map session -> per-window MSE (`evaluate_windows(window_mse=...)`, windows in time
    order); a window weighs by its session's `units`, as in the pooled MSE. Overlapping windows are
    not independent, so the error is that of a ratio estimator over blocks of `block` consecutive
    windows (the caller passes windows per horizon, one number or one per session,
    `windows_per_horizon`, so that blocks' targets do not overlap); with fewer than two blocks the
    error is infinite: no comparison can be trusted."""
    diffs, weights = [], []
    for session, b in base.items():
        d = b - new[session]
        size = block[session] if isinstance(block, dict) else block
        for lo in range(0, len(d), size):
            diffs.append(d[lo:lo + size].mean())
            weights.append(len(d[lo:lo + size]) * units[session])
    x, w = np.asarray(diffs, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    mean = float((w * x).sum() / w.sum()) if len(x) else 0.0
    if len(x) < 2:
        return mean, math.inf
    k = len(x)
    se = float(np.sqrt(k / (k - 1) * (w ** 2 * (x - mean) ** 2).sum()) / w.sum())
    return mean, se


def val_improvement(data, base: dict[str, np.ndarray], new: dict[str, np.ndarray], length: int, horizon: int,
                    stride: int) -> tuple[float, float]:
    """`paired_improvement` of two models' per-window validation MSEs on `data` (PreparedData), windows
    of `length` frames at `stride` validated, each session's units weighing as in the pooled MSE."""
    units = {sd.session: len(sd.unit_ids) for sd in data.sessions}
    blocks = {sd.session: windows_per_horizon(len(sd.windows("val", length, stride)), len(base[sd.session]),
                                              horizon, stride) for sd in data.sessions}
    return paired_improvement(base, new, units, blocks)


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast (matmuls in bf16, fp32 master weights) on CUDA and CPU when asked; a no-op
    elsewhere. On CPUs without native bf16 (no AVX512-BF16 or AMX) it is slower than fp32."""
    if bf16 and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
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
    window_mse: dict | None = None,
) -> dict[str, dict[str, Any]]:
    """Per-session metrics of `model` on `split` windows of PreparedData (keyed by session name).

    `precision`: fp32 (default: reported scores are exact), or the arithmetic forecasts use
    (``auto``/``bf16``, see `poco_core.models.inference`), to measure what it costs.

    `hidden_cache` (a dict the caller keeps; models with ``hidden_states`` only): the windows and
    their MLP hidden layers are stored there on the first call and reused after, which is exact
    while the MLP is frozen (embedding-only finetuning validates the same windows every time).

    `window_mse` (a dict the caller passes): filled with session -> (windows,) float64 array of each
    window's MSE over its horizon and units, in time order (see `paired_improvement`)."""
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
            acc, corr = ErrorAccumulator(hor, train_means(sd)), CorrelationAccumulator()
            per_window: list[np.ndarray] = []
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
                acc.update(pred.float(), w[:, ctx:], w[:, ctx - 1], smoothed_last(w[:, :ctx]))
                corr.update(pred.float(), w[:, ctx:])
                if window_mse is not None:
                    per_window.append((pred.double() - w[:, ctx:].double()).square().mean(dim=(1, 2)).cpu().numpy())
            if window_mse is not None:
                window_mse[sd.session] = np.concatenate(per_window) if per_window else np.zeros(0)
            out[sd.session] = {"dataset": sd.dataset, **acc.metrics(), **corr.metrics()}
    finally:
        model.train(was_training)
    return out
