"""Live mode: follow a recording while it is acquired, forecast ahead of it, adapt to the animal.

``LiveSession(source, model)`` polls a live source (see ``live_sources``), preprocesses the new
frames honestly and forecasts at every frame (see ``online``); ``run`` loops until stopped and
hands each ``LiveUpdate`` to a callback (the napari panel, ``poco live``, a notebook).
``replay`` writes a recording into a growing project HDF5 file at its sampling rate, so all of
this can be tried without a microscope.
"""
from __future__ import annotations

import copy
import os
import tempfile
import threading
import time
from dataclasses import dataclass, replace as dc_replace
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import PocoError
from .events import CancelLike, Event, is_cancelled
from .live_sources import FolderSource, H5LiveSource, LiveRecording, LiveSource, LiveSourceError, open_source
from .models import BaseForecaster, SessionSpec
from .preprocess import PreparedData, PreprocessConfig, SessionData, split_blocks
from .online import Forecast, OnlineConfig, OnlinePreprocessor, RollingForecaster, Score
from .recording import Recording

__all__ = [
    "LiveSession", "LiveUpdate", "LiveRecording", "H5LiveSource", "FolderSource", "LiveSource", "LiveSourceError",
    "open_source", "OnlineConfig", "H5LiveWriter", "replay", "live_model", "OnlineAdapter",
]

STALL_PERIODS = 3  # no frame for this many frame periods: the writer is reported as stalled


class H5LiveWriter:
    """Creates a project HDF5 file (no frames yet) and appends frames in SWMR mode.

    The file is written by ``save_recording`` under a temporary name, opened with
    ``libver='latest'`` and ``swmr_mode`` on, and only then renamed over ``path``: a follower never
    meets it half-made or not yet in SWMR mode, and an existing file is replaced (a new inode), not
    rewritten in place. Every append is flushed, so a reader that calls ``refresh()`` sees it at once.
    """

    def __init__(self, path: str | Path, template: Recording):
        import h5py

        from .io.h5 import save_recording

        self.path = Path(path)
        tmp = self.path.with_name(f".{self.path.name}.live-tmp")
        empty = np.zeros((0, template.n_rois), np.float32)
        save_recording(dc_replace(template, traces=empty, extra_traces={}), tmp)
        self._file = h5py.File(tmp, "a", libver="latest")
        self._file.swmr_mode = True
        os.replace(tmp, self.path)  # readers only ever see the file already in SWMR mode
        self._ds = self._file["traces"]

    @property
    def n_frames(self) -> int:
        return int(self._ds.shape[0])

    def append(self, frames: np.ndarray) -> int:
        block = np.atleast_2d(np.asarray(frames, dtype=np.float32))
        n = self._ds.shape[0]
        self._ds.resize(n + len(block), axis=0)
        self._ds[n:] = block
        self._ds.flush()
        return n + len(block)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "H5LiveWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def replay(
    recording: Recording,
    out_h5: str | Path,
    fs: float | None = None,
    chunk: int = 1,
    cancel: CancelLike | None = None,
    on_write: Callable[[int, float], None] | None = None,
) -> int:
    """Write ``recording``'s frames into a growing HDF5 file at ``fs`` (default: its own rate).

    Frames go out ``chunk`` at a time on a fixed schedule (no drift: frame i is due at
    start + i / fs). ``on_write(n_frames, monotonic_time)`` is called after each flushed
    append. Returns the number of frames written (fewer if cancelled).
    """
    fs = float(fs or recording.fs)
    if fs <= 0:
        raise PocoError(f"replay rate must be positive, got {fs}")
    with H5LiveWriter(out_h5, dc_replace(recording, fs=fs)) as writer:
        start = time.monotonic()
        for i in range(0, recording.n_frames, chunk):
            due = start + (i + chunk - 1) / fs
            while (wait := due - time.monotonic()) > 0:
                if is_cancelled(cancel):
                    return writer.n_frames
                time.sleep(min(wait, 0.1))
            n = writer.append(recording.traces[i : i + chunk])
            if on_write is not None:
                on_write(n, time.monotonic())
        return writer.n_frames


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

    @property
    def n_frames(self) -> int:
        return self.source.n_frames

    def _build(self) -> None:
        ids = list(self.source.roi_ids)
        self.preprocessor = OnlinePreprocessor(len(ids), self.source.fs, self.config)
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
            if quiet > STALL_PERIODS / self.preprocessor.fs:
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


class OnlineAdapter:
    """Finetunes the live session's embeddings in a background thread, again as frames accumulate.

    Each round takes the frames held so far (normalised with the statistics in force), splits
    them by the usual blocks, finetunes a copy of the forecaster's current model with
    ``poco_core.finetune`` (mode ``embeddings`` by default) and swaps the result in with
    ``RollingForecaster.set_model``; forecasting never waits for it. A round starts once
    ``min_frames`` are held and again after every ``every`` new frames. ``on_event`` receives the
    finetune events plus ``{"type": "swapped", "round", "model_version", "frames"}``.
    """

    def __init__(
        self,
        session: LiveSession,
        steps: int = 200,
        every: int | None = None,
        min_frames: int | None = None,
        mode: str = "embeddings",
        on_event: Callable[[Event], None] | None = None,
        **finetune_options: object,
    ):
        if session.forecaster is None:
            raise PocoError("adaptation needs a model and at least one frame; connect with a checkpoint first")
        self.session = session
        self.forecaster = session.forecaster
        length = self.forecaster.context + self.forecaster.horizon
        self.min_frames = min_frames or 5 * length  # every split needs one window
        self.every = every or self.min_frames
        self.steps = steps
        self.mode = mode
        self.on_event = on_event or (lambda event: None)
        self.options = {"val_every": max(steps // 4, 1), "device": "cpu", **finetune_options}
        self.rounds = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="poco-live-adapt-")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "OnlineAdapter":
        if not self.running:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="poco-live-adapt", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        trained_at = 0
        while not self._stop.is_set():
            n = self.forecaster.n_frames
            if n >= self.min_frames and (self.rounds == 0 or n - trained_at >= self.every):
                trained_at = n
                try:
                    self.run_round()
                except PocoError as exc:  # reported, and the forecasts go on with the old model
                    self.error = str(exc)
                    self.on_event({"type": "error", "message": self.error})
                    return
            else:
                self._stop.wait(0.2)

    def _data(self) -> PreparedData:
        fc, pre = self.forecaster, self.forecaster.pre
        values = fc.training_values()
        state = pre.to_state(list(self.session.source.roi_ids))
        config = state.config
        ranges = split_blocks(len(values), config.block_len, config.split)
        spec = fc.model.session_spec(fc.session)
        sd = SessionData(fc.session, spec.dataset, list(spec.unit_ids), values, state, ranges, "live")
        return PreparedData([sd], config)

    def run_round(self) -> bool:
        """One finetuning round on the frames held now; True if the adapted model was swapped in."""
        from .finetune import finetune_events  # the training stack loads only when adapting
        from .restore import ModelInfo

        data = self._data()
        model = copy.deepcopy(self.forecaster.model)
        if getattr(model, "poco_meta", None) is None:
            model.poco_meta = ModelInfo(preprocess={}, preprocess_config=PreprocessConfig())
        checkpoint = Path(self._dir.name) / "adapted.pt"
        done: Event = {}
        for event in finetune_events(model, data, mode=self.mode, checkpoint=checkpoint, cancel=self._stop,
                                     steps=self.steps, **self.options):
            self.on_event(event)
            if event["type"] == "done":
                done = event
        if not done or done["cancelled"]:
            return False
        self.forecaster.set_model(model)
        self.rounds += 1
        self.on_event({"type": "swapped", "round": self.rounds, "model_version": self.forecaster.model_version,
                       "frames": len(data.sessions[0].values)})
        return True
