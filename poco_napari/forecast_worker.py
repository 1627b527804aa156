"""Computes forecasts of a finished model at a chosen frame, in the recording's units, for the
forecast dock's slider. Touches the engine (poco_core) and the shared ROI selection; no Qt.
"""
from __future__ import annotations

from typing import Any

import numpy as np


class ModelForecaster:
    """`forecast_at(t)` for ForecastDock: a trained model on one recording, in the recording's units.

    Shows the ROIs selected in the viewer (the shared selection), else the first few units.
    """

    def __init__(self, model: Any, recording: Any, n_default: int = 4):
        from poco_core.training.restore import session_state

        self.model, self.recording = model, recording
        self.state = session_state(model, recording.session)
        self.n_default = n_default
        self.context, self.horizon = model.config.context, model.config.horizon

    @property
    def frame_range(self) -> tuple[int, int]:
        """First and last t with a full context before and P recorded frames after."""
        return self.context - 1, self.recording.n_frames - self.horizon - 1

    def units(self) -> list[int]:
        """Model unit positions of the selected ROIs that survived preprocessing."""
        from poco_napari.selection import selection_for

        keep = list(np.asarray(self.state.keep))
        picked = [keep.index(i) for i in selection_for(self.recording).indices if i in keep]
        return picked or list(range(min(self.n_default, len(keep))))

    def __call__(self, t: int) -> dict[str, Any]:
        from poco_core.analysis.forecast import forecast

        fc = forecast(self.model, self.recording, t)
        units = self.units()
        rois = np.asarray(self.state.keep)[units]
        traces = self.recording.traces
        return {
            "context": np.asarray(traces[t - self.context + 1:t + 1])[:, rois].T,
            "actual": np.asarray(traces[t + 1:t + self.horizon + 1])[:, rois].T,
            "forecast": fc.values[0][:, units].T,
            "labels": [self.recording.roi_ids[i] for i in rois],
            "title": f"{self.recording.session}: forecast after frame {t} ({t / self.recording.fs:.2f} s)",
            "fs": float(self.recording.fs),
        }
