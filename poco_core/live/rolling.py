"""The rolling forecaster: a ring buffer of unit-space frames, a forecast at every frame from the
last C of them on its own thread, and running scores against copy as the actual frames arrive.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from poco_core.base.errors import PocoError
from poco_core.live.online import OnlinePreprocessor
from poco_core.models.inference import predict
from poco_core.models.traced import TRACE_AFTER

WARM_UP_PASSES = TRACE_AFTER + 3  # eager passes, the one that traces, and the trace's first (profiling) runs


class History:
    """The last ``capacity`` unit-space frames in a ring buffer; frame indices are absolute."""

    def __init__(self, n_units: int, capacity: int):
        self.capacity = int(capacity)
        self._buf = np.zeros((self.capacity, n_units), np.float32)
        self.n_total = 0

    @property
    def first(self) -> int:
        return max(self.n_total - self.capacity, 0)

    def append(self, u: np.ndarray) -> None:
        n = len(u)
        u = u[-self.capacity :]
        self._buf[(self.n_total + n - len(u) + np.arange(len(u))) % self.capacity] = u
        self.n_total += n

    def frames(self, start: int, stop: int) -> np.ndarray:
        """Frames [start, stop) as a new (stop-start, N) array; they must still be held."""
        if start < self.first or stop > self.n_total or start > stop:
            raise PocoError(f"history holds frames {self.first}..{self.n_total - 1}, asked for {start}..{stop - 1}")
        return self._buf[np.arange(start, stop) % self.capacity]

    def windows(self, ends: np.ndarray, length: int) -> np.ndarray:
        """(B, length, N) windows ending at (inclusive) frame indices ``ends``."""
        rows = (ends[:, None] - length + 1 + np.arange(length)) % self.capacity
        return self._buf[rows]


@dataclass
class Forecast:
    """The forecast made at frame ``t``: ``values`` (P, N) unit-space frames t+1..t+P."""

    t: int
    values: np.ndarray
    made_at: float
    model_version: int = 0
    scored: bool = False


@dataclass
class Score:
    """Running prediction score 1 - MSE_model / MSE_copy over forecasts completed recently."""

    score: float
    mse_model: float
    mse_copy: float
    n_forecasts: int
    window_s: float
    since_version: int | None = None


class RollingForecaster:
    """Forecasts P frames ahead at every new frame from the C frames ending at it.

    ``update(raw)`` takes newly arrived raw frames and returns their unit-space values and the new forecasts. The model is
    held behind a lock and replaced with ``set_model`` (e.g. after online adaptation) without
    interrupting forecasting: a forward pass already running finishes with the old model.
    A backlog longer than ``catch_up`` frames (connecting to a long recording) is preprocessed in
    full but forecast only at its last ``catch_up`` frames. With ``shed_load`` the forecaster also
    keeps itself real-time on a machine too slow (or busy) to forecast every frame: each update
    forecasts only as many of the newest frames as fit in one frame period at the measured cost
    per window (at least the newest one); ``skipped`` counts the frames left without a forecast.
    Every frame is still preprocessed, kept and scored against.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        session: str,
        preprocessor: OnlinePreprocessor,
        history_frames: int = 4096,
        score_window_s: float = 120.0,
        catch_up: int = 64,
        keep_forecasts: int | None = None,
        shed_load: bool = True,
        precision: str = "auto",
    ):
        self.precision = precision  # see poco_core.models.inference: auto = bf16 where the hardware has it natively
        self.context = int(model.config.context)
        self.horizon = int(model.config.horizon)
        self.session = session
        self.pre = preprocessor
        self.catch_up = catch_up
        self.score_window_s = score_window_s
        self.history = History(preprocessor.n_units, max(history_frames, self.context + self.horizon + catch_up))
        self._model = model.eval()
        self._lock = threading.RLock()  # model, history, waiting frames, forecasts and errors
        self.frames_due = threading.Event()  # set by ingest, for a forecasting thread to wait on
        self._forecasts: deque[Forecast] = deque(maxlen=keep_forecasts or max(4 * self.horizon, catch_up))
        self._errors: deque[tuple[int, float, float, int]] = deque()  # (frame, mse model, mse copy, model version)
        self.model_version = 0
        self.latest: Forecast | None = None
        self.shed_load = shed_load
        self.skipped = 0
        self._due: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # frames waiting for a forecast, with their stats
        self._window_cost = 0.0  # running estimate of wall seconds per forecast window

    # -- the model -------------------------------------------------------------------
    @property
    def model(self) -> torch.nn.Module:
        with self._lock:
            return self._model

    def warm_up(self) -> None:
        """Passes on zeros: make the low-precision copy and the trace (``models/traced.py``) and
        prime the kernels, so that the first real forecast is not late (a forecasting thread
        calls this before frames are due)."""
        self._prime(self.model)

    def _prime(self, model: torch.nn.Module) -> None:
        zeros = [torch.zeros(1, self.context, self.pre.n_units)]
        for _ in range(WARM_UP_PASSES):
            predict(model, zeros, [self.session], self.precision)

    def set_model(self, model: torch.nn.Module) -> None:
        """Swap the model atomically; the next forecast uses it. Its low-precision copy and trace
        are made here, on the caller's thread, so the forecasting thread never waits for them."""
        model.eval()
        self._prime(model)
        with self._lock:
            self._model = model
            self.model_version += 1

    # -- frames in, forecasts out ------------------------------------------------------
    @property
    def n_frames(self) -> int:
        return self.history.n_total

    def update(self, raw: np.ndarray) -> tuple[np.ndarray, list[Forecast]]:
        """Ingest raw frames and forecast; returns the new unit-space frames and the forecasts made."""
        u = self.ingest(raw)
        return u, self.forecast_due()

    def ingest(self, raw: np.ndarray) -> np.ndarray:
        """Preprocess and keep new raw frames (cheap); they wait for ``forecast_due``. Returns unit-space frames.

        Only the newest ``catch_up`` frames wait, with the statistics of frames up to each of them.
        Safe to call from one thread while another runs ``forecast_due``.
        """
        with self._lock:
            u, mean, sd = self.pre.push(raw)
            first = self.history.n_total
            self.history.append(u)
            ends = np.arange(first, self.history.n_total)
            due = ends >= max(self.context, self.pre.ready_from) - 1
            if due.any():
                rows = lambda a: np.broadcast_to(a, (len(ends), a.shape[1]))[due]  # noqa: E731  per-frame or fixed stats
                self._due = [*self._due, (ends[due], rows(mean), rows(sd))]
                self._drop_due(self.catch_up)
            self._score(ends)
        self.frames_due.set()
        return u

    def _drop_due(self, keep: int) -> None:
        """Keep only the newest ``keep`` waiting frames; the others are counted as skipped."""
        ends, mean, sd = (np.concatenate(parts) for parts in zip(*self._due))
        self.skipped += max(len(ends) - keep, 0)
        self._due = [(ends[-keep:], mean[-keep:], sd[-keep:])]

    def forecast_due(self) -> list[Forecast]:
        """Forecast at the waiting frames (with ``shed_load``, only as many of the newest as fit in a
        frame period). The forward pass runs outside the lock, so ingesting never waits for it."""
        with self._lock:
            self.frames_due.clear()
            if not self._due:
                return []
            self._drop_due(self._how_many())
            (ends, mean, sd), self._due = self._due[0], []
            x = (self.history.windows(ends, self.context) - mean[:, None]) / sd[:, None]
            model, version = self._model, self.model_version
        start = time.monotonic()
        z = predict(model, [torch.from_numpy(x)], [self.session], self.precision)[0].cpu().numpy()
        values = z * sd[:, None] + mean[:, None]
        now = time.monotonic()
        cost = (now - start) / len(ends)
        made = [Forecast(int(t), v, now, version) for t, v in zip(ends, values)]
        with self._lock:
            self._window_cost = cost if self._window_cost == 0.0 else 0.7 * self._window_cost + 0.3 * cost
            self._forecasts.extend(made)
            self.latest = made[-1]
            self._score_made(made)
        return made

    def _how_many(self) -> int:
        """How many of the newest frames to forecast at in this update."""
        if not self.shed_load or self._window_cost == 0.0:
            return self.catch_up
        return int(np.clip(1.0 / (self.pre.fs * self._window_cost), 1, self.catch_up))

    def forecast_at(self, t: int) -> Forecast | None:
        """The forecast made at frame t, if still kept."""
        with self._lock:
            for f in reversed(self._forecasts):
                if f.t == t:
                    return f
                if f.t < t:
                    return None
        return None

    # -- scoring -----------------------------------------------------------------------
    def _score(self, arrived: np.ndarray) -> None:
        """For each arrived frame s, the forecast made at s - P (if made already) is complete: score it."""
        self._score_made([f for s in arrived if (f := self.forecast_at(int(s) - self.horizon)) is not None])

    def _score_made(self, forecasts: list[Forecast]) -> None:
        """Score the forecasts whose P frames have all arrived (each forecast is scored exactly once:
        when its last frame arrives, or when it is made if that frame came first) against copy."""
        scale = self.pre.current_stats()[1]
        for f in forecasts:
            end = f.t + 1 + self.horizon
            if end > self.n_frames or f.t < self.history.first or f.scored:
                continue
            f.scored = True
            actual = self.history.frames(f.t + 1, end)
            last = self.history.frames(f.t, f.t + 1)
            model_err = float(np.mean(((f.values - actual) / scale) ** 2))
            self._errors.append((end - 1, model_err, float(np.mean(((last - actual) / scale) ** 2)), f.model_version))
        horizon_frames = self.score_window_s * self.pre.fs
        while self._errors and self._errors[0][0] <= self.n_frames - 1 - horizon_frames:
            self._errors.popleft()

    def score(self, since_version: int | None = None) -> Score | None:
        """Score over the window; ``since_version`` keeps only forecasts of that model version or later."""
        with self._lock:
            e = np.asarray(self._errors, dtype=float).reshape(-1, 4)
        if since_version is not None:
            e = e[e[:, 3] >= since_version]
        if not len(e):
            return None
        m, c = float(e[:, 1].mean()), float(e[:, 2].mean())
        return Score(1.0 - m / c if c > 0 else float("nan"), m, c, len(e), self.score_window_s, since_version)

    def training_values(self) -> np.ndarray:
        """Model-space values of the frames held so far, normalised with the current statistics."""
        with self._lock:
            u = self.history.frames(self.history.first, self.history.n_total)
        mean, sd = self.pre.current_stats()
        return (u - mean) / sd
