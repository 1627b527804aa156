"""Forecasts from a trained model for a recording of a session it knows.

`forecast(model, rec, t)` uses only frames t-C+1..t (inclusive) and returns the next P steps
for every unit, in model (z-scored) units and -- unless the model works on PCs -- in the
recording's original units. The frames are normalised with the model's stored preprocessing
state (never re-fitted). Zero-phase filters look both ways in time, so with such a filter the
context is filtered on its own, ending at t; no frame after t is ever read.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from poco_core.base.errors import PocoError
from poco_core.data.preprocess import PreprocessState, model_values
from poco_core.data.recording import Recording
from poco_core.models import BaseForecaster
from poco_core.models.inference import predict
from poco_core.training.restore import check_recording, session_state

CAUSAL_FILTERS = ("none", "causal_lowpass")
FILTER_WARMUP = 1000  # frames of history a causal filter gets before the context


@dataclass
class Forecast:
    """Forecasts for context windows ending at frames `t` (K of them; K=1 for `forecast`).

    z: (K, P, N') model units; values: (K, P, N') original units, or None with PCA;
    frames: (K, P) model frame index of each forecast step (t+1..t+P); unit_ids: the N' units.
    Frames count the model's frames: with temporal binning (``bin`` > 1) model frame k is the
    mean of recorded frames k*bin .. (k+1)*bin - 1. ``fs`` is the model's rate and ``time_s``
    (K, P) the time of each forecast step from the recording's start, in seconds.
    """

    t: np.ndarray
    z: np.ndarray
    values: np.ndarray | None
    frames: np.ndarray
    unit_ids: list[str]
    session: str
    fs: float = 1.0
    bin: int = 1

    @property
    def time_s(self) -> np.ndarray:
        return self.frames / self.fs


def _contexts(state: PreprocessState, rec: Recording, ts: np.ndarray, c: int) -> np.ndarray:
    """(K, C, N') model inputs for windows ending at each t, reading no frame after it."""
    if state.config.filter in CAUSAL_FILTERS:
        # pointwise or causal: one pass over [first context (minus filter warm-up), last t]
        warm = 0 if state.config.filter == "none" else FILTER_WARMUP
        lo = max(0, int(ts.min()) - c + 1 - warm)
        z = model_values(state, rec, lo, int(ts.max()) + 1)
        return np.stack([z[t - c + 1 - lo: t + 1 - lo] for t in ts])
    return np.stack([model_values(state, rec, t - c + 1, t + 1) for t in ts])


def _predict(model: BaseForecaster, session: str, ctx: np.ndarray, batch: int, precision: str) -> np.ndarray:
    return np.concatenate([predict(model, [torch.from_numpy(ctx[i:i + batch])], [session], precision)[0].cpu().numpy()
                           for i in range(0, len(ctx), batch)])


def rolling_forecast(model: BaseForecaster, recording: Recording, t_start: int, t_stop: int, step: int = 1,
                     batch: int = 256, precision: str = "auto") -> Forecast:
    """Forecasts for every t in range(t_start, t_stop, step), computed `batch` windows at a time;
    ``precision`` as in `poco_core.models.inference` (auto: bf16 where the hardware has it natively)."""
    c, p = model.config.context, model.config.horizon
    ts = np.arange(t_start, t_stop, step, dtype=np.int64)
    if len(ts) == 0:
        raise PocoError(f"no forecast times in range({t_start}, {t_stop}, {step})")
    state = session_state(model, recording.session)
    n = recording.n_frames // state.bin
    binned = f" (model frames: recorded frames binned by {state.bin})" if state.bin > 1 else ""
    if ts.min() < c - 1 or ts.max() >= n:
        raise PocoError(f"t must be in [{c - 1}, {n - 1}] (context of {c} frames ending at t, "
                        f"{n} frames recorded{binned}); got {int(ts.min())}..{int(ts.max())}")
    if recording.n_rois != state.n_input:
        raise PocoError(f"session {recording.session!r}: recording has {recording.n_rois} ROIs, "
                        f"the model's preprocessing expects {state.n_input}")
    check_recording(model, recording)
    z = _predict(model, recording.session, _contexts(state, recording, ts, c), batch, precision)
    values = None
    if state.pca_components is None:
        values = state.inverse(z.reshape(-1, z.shape[-1])).reshape(z.shape)
    return Forecast(t=ts, z=z, values=values, frames=ts[:, None] + np.arange(1, p + 1),
                    unit_ids=list(state.unit_ids), session=recording.session, fs=state.fs, bin=state.bin)


def forecast(model: BaseForecaster, recording: Recording, t: int, precision: str = "auto") -> Forecast:
    """The next P steps after frame t for every unit, from frames t-C+1..t."""
    return rolling_forecast(model, recording, t, t + 1, precision=precision)
