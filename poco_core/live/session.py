"""Live mode: follow a recording while it is acquired, forecast ahead of it, adapt to the animal.

``LiveSession(source, model)`` polls a live source (see ``sources``), preprocesses the new
frames honestly and forecasts at every frame (see ``online``); ``run`` loops until stopped and
hands each ``LiveUpdate`` to a callback (the napari panel, ``poco live``, a notebook).
``replay`` (``replay.py``) writes a recording into a growing project HDF5 file at its sampling rate,
so all of this can be tried without a microscope; ``OnlineAdapter`` (``adapt.py``) finetunes while it runs.
"""
from __future__ import annotations

import copy
import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from poco_core.base.errors import PocoError
from poco_core.base.events import CancelLike, is_cancelled
from poco_core.data.preprocess import bin_factor
from poco_core.live.online import OnlineConfig, OnlinePreprocessor
from poco_core.live.rolling import Forecast, RollingForecaster, Score
from poco_core.live.sources import (
    FolderSource,
    H5LiveSource,
    LiveRecording,
    LiveSource,
    LiveSourceError,
    open_source,
)
from poco_core.models import BaseForecaster, SessionSpec

__all__ = [
    "LiveSession", "LiveUpdate", "LiveRecording", "H5LiveSource", "FolderSource", "LiveSource", "LiveSourceError",
    "open_source", "OnlineConfig", "live_model",
]

STALL_PERIODS = 3  # no frame for this many frame periods (and MIN_STALL_S): the writer is reported as stalled
MIN_STALL_S = 1.0  # a 30 Hz writer's ordinary jitter is not a stall


def live_binning(model: BaseForecaster | None, fs: float) -> tuple[int, list[str]]:
    """Raw frames per model frame for a live source at ``fs`` Hz, as the checkpoint's preprocessing
    bins a new recording (``--bin-frames``/``--target-fs``), and warnings when the binned rate is
    not one the model was trained at (its frames would then mean other times than in training)."""
    info = getattr(model, "poco_meta", None)
    if info is None:
        return 1, []
    n, notes = bin_factor(fs, info.preprocess_config)
    trained = sorted({round(s.fs, 6) for s in info.preprocess.values()})
    if trained and all(abs(fs / n - t) > 0.01 * t for t in trained):
        notes.append(f"the live source is at {fs:g} Hz ({fs / n:.4g} Hz after binning by {n}) but the model was "
                     f"trained at {', '.join(f'{t:.4g} Hz' for t in trained)}; its context and horizon mean other times")
    return n, notes


def live_model(model: BaseForecaster, unit_ids: list[str], session: str = "live") -> tuple[BaseForecaster, bool]:
    """A model that knows ``session`` with these units, and whether it was already trained on it.

    A session the checkpoint knows with the same units is used as is; otherwise a copy of the
    model gets a fresh session (new embeddings, to be learnt by online adaptation).
    """
    known = {s.session: s for s in model.sessions}
    if session in known:
        if list(known[session].unit_ids) != list(unit_ids):
            raise PocoError(f"the model's session {session!r} has other units than this live source; pick a new session name")
        return model, True
    fresh = copy.deepcopy(model)
    fresh.add_session(SessionSpec(session, model.sessions[0].dataset if model.sessions else "live", list(unit_ids)))
    return fresh.eval(), False


@dataclass
class LiveUpdate:
    """What one poll or one forecast pass brought.

    ``raw`` (k, N) are frames ``first..first+k-1`` (none in a forecast-only update); ``units`` (k', M)
    the unit-space frames that became available (ROIs after filtering, or PCs), the last one being
    frame ``units_end - 1``; ``mean``/``sd`` the normalisation in force (for display);
    ``forecasts`` those just made.
    """

    first: int
    raw: np.ndarray
    units: np.ndarray
    units_end: int
    forecasts: list[Forecast]
    score: Score | None
    mean: np.ndarray
    sd: np.ndarray
    ready_at: float  # time.monotonic() when this update was ready
    compute_ms: float  # CPU time this thread spent on it (reading + preprocessing, or forecasting)

    @property
    def last(self) -> int:
        return self.first + len(self.raw) - 1


class LiveSession:
    """A live source, honest preprocessing and (with a model) a rolling forecaster, polled together.

    The forecaster is built once the source knows its ROIs (an HDF5 file may not exist yet).
    Without a model, frames still flow (traces only).
    """

    def __init__(
        self,
        source: LiveSource,
        model: BaseForecaster | None = None,
        config: OnlineConfig | None = None,
        session: str = "live",
        **forecaster_options: object,
    ):
        self.source = source
        self.config = config or OnlineConfig()
        self.session = session
        self.base_model = model
        self.forecaster_options = forecaster_options
        self.forecaster: RollingForecaster | None = None
        self.preprocessor: OnlinePreprocessor | None = None
        self.known_session = False
        self._last_frame_at: float | None = None
        self._units_end = 0
        self.notes: list[str] = []  # what the binning chosen from the model's preprocessing says (see live_binning)

    @property
    def n_frames(self) -> int:
        return self.source.n_frames

    @property
    def fs(self) -> float:
        """Rate of the model-space frames (the source's rate divided by the bin; known after the first frame)."""
        return self.preprocessor.fs if self.preprocessor is not None else self.source.fs

    def _build(self) -> None:
        ids = list(self.source.roi_ids)
        n_bin, self.notes = live_binning(self.base_model, self.source.fs)
        config = self.config if n_bin == self.config.bin else dataclasses.replace(self.config, bin=n_bin)
        self.preprocessor = OnlinePreprocessor(len(ids), self.source.fs, config)
        if self.base_model is not None:
            units = self.preprocessor.unit_ids or ids
            model, self.known_session = live_model(self.base_model, units, self.session)
            self.forecaster = RollingForecaster(model, self.session, self.preprocessor, **self.forecaster_options)

    def poll(self) -> LiveUpdate | None:
        """Read and preprocess what arrived (cheap; no forecast yet); None when nothing new arrived."""
        first, cpu = self.source.n_frames, time.thread_time()
        raw = self.source.poll()
        if len(raw) == 0:
            return None
        self._last_frame_at = time.monotonic()
        if self.preprocessor is None:
            self._build()
        units = self.forecaster.ingest(raw) if self.forecaster else self.preprocessor.push(raw)[0]
        self._units_end += len(units)
        return self._update(first, raw, units, [], cpu)

    def forecast(self) -> LiveUpdate | None:
        """Forecast at the frames polled so far; None without a model or when none is due."""
        cpu = time.thread_time()
        made = self.forecaster.forecast_due() if self.forecaster else []
        if not made:
            return None
        empty = np.zeros((0, len(self.source.roi_ids)), np.float32)
        return self._update(self.source.n_frames, empty, empty[:, :0], made, cpu)

    def _update(self, first: int, raw: np.ndarray, units: np.ndarray, made: list[Forecast], cpu: float) -> LiveUpdate:
        mean, sd = self.preprocessor.current_stats()
        score = self.forecaster.score() if self.forecaster else None
        return LiveUpdate(first, raw, units, self._units_end, made, score, mean, sd, time.monotonic(),
                          (time.thread_time() - cpu) * 1000)

    def step(self) -> LiveUpdate | None:
        """Poll and forecast in one go (notebooks, scripts); the update carries both."""
        update = self.poll()
        made = self.forecast()
        if update is not None and made is not None:
            update.forecasts, update.score = made.forecasts, made.score
        return update

    def status(self) -> str:
        """Source status, and 'stalled' when no frame came for STALL_PERIODS frame periods."""
        text = getattr(self.source, "status", "following")
        if self._last_frame_at is not None and self.preprocessor is not None:
            quiet = time.monotonic() - self._last_frame_at
            if quiet > max(STALL_PERIODS / self.source.fs, MIN_STALL_S):
                text = f"writer stalled: no frame for {quiet:.1f} s (waiting)"
        return text

    def describe(self) -> str:
        """Which preprocessing is in force (empty until the first frame)."""
        return "" if self.preprocessor is None else self.preprocessor.describe()

    def run(self, on_update: Callable[[LiveUpdate], None], stop: CancelLike, interval: float = 0.005) -> None:
        """Poll until ``stop`` is set, calling ``on_update`` with frames and, separately, with forecasts.

        This thread reads frames and hands them on at once; a second thread makes the forecasts,
        so a slow forecast (many ROIs, a busy CPU) never delays reading or showing frames.
        ``on_update`` is therefore called from two threads. An in-process LiveRecording wakes the
        loop as soon as frames are appended; file sources are polled every ``interval`` seconds
        (a refresh costs well under a millisecond). An error in either thread ends the run.
        """
        wait = getattr(self.source, "wait", None)
        done, failed = threading.Event(), []
        worker: threading.Thread | None = None
        try:
            while not is_cancelled(stop) and not failed:
                update = self.poll()
                if update is not None:
                    on_update(update)
                    if worker is None and self.forecaster is not None:
                        worker = threading.Thread(target=self._forecast_loop, args=(on_update, done, failed),
                                                  name="poco-live-forecast", daemon=True)
                        worker.start()
                elif wait is not None:
                    wait(0.1)
                else:
                    time.sleep(interval)
        finally:
            done.set()
            if worker is not None:
                worker.join()
        if failed:
            raise failed[0]

    def _forecast_loop(self, on_update: Callable[[LiveUpdate], None], done: threading.Event, failed: list) -> None:
        try:
            self.forecaster.warm_up()
            while not done.is_set():
                if self.forecaster.frames_due.wait(0.1):
                    made = self.forecast()
                    if made is not None:
                        on_update(made)
        except Exception as exc:  # noqa: BLE001  handed to the reading thread, which raises it
            failed.append(exc)
