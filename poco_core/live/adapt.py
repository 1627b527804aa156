"""Online adaptation: finetune a live session's embeddings in a background thread while it
forecasts, and swap the adapted model in.
"""
from __future__ import annotations

import copy
import tempfile
import threading
from pathlib import Path
from typing import Callable

from poco_core.base.errors import PocoError
from poco_core.base.events import Event
from poco_core.data.preprocess import (
    PreparedData,
    PreprocessConfig,
    SessionData,
    split_blocks,
)
from poco_core.live.session import LiveSession


class OnlineAdapter:
    """Finetunes the live session's embeddings in a background thread, again as frames accumulate.

    Each round takes the frames held so far (normalised with the statistics in force), splits
    them by the usual blocks, finetunes a copy of the forecaster's current model with
    ``poco_core.training.finetune`` (mode ``embeddings`` by default) and swaps the result in with
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
        from poco_core.training.finetune import (
            finetune_events,  # the training stack loads only when adapting
        )
        from poco_core.training.restore import ModelInfo

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
