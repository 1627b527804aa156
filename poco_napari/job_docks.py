"""One set of plot docks per viewer (curves, forecast vs actual, results), shared by the training
and finetuning widgets.
"""
from __future__ import annotations

import weakref
from itertools import pairwise
from typing import Any

from qtpy.QtCore import Qt

from poco_napari.forecast_plot import ForecastDock
from poco_napari.forecast_worker import ModelForecaster
from poco_napari.results_table import ResultsDock
from poco_napari.saving import save_forecasts
from poco_napari.training_curves import TrainingCurves


class JobDocks:
    """The three plot docks of one viewer, shared by the training and finetuning widgets."""

    def __init__(self, viewer: Any):
        self.viewer = viewer
        self.curves = TrainingCurves()
        self.forecast = ForecastDock()
        self.results = ResultsDock()
        self._views = (self.curves, self.forecast, self.results)
        self._job: Any = None
        self._time_connected = False
        # napari's own window behind a plugin widget's proxy: Qt calls need the real dock widgets
        window = getattr(getattr(viewer, "__wrapped__", viewer), "window", None)
        if window is not None and hasattr(window, "add_dock_widget"):
            # one row along the bottom, side by side: stacked, their height floors would push
            # the window past a 1080p screen
            docks = [window.add_dock_widget(view, name=name, area="bottom") for view, name in (
                (self.curves, "POCO training curves"), (self.forecast, "POCO forecast vs actual"),
                (self.results, "POCO results"))]
            main = getattr(window, "_qt_window", None)
            if main is not None:
                for left, right in pairwise(docks):
                    main.splitDockWidget(left, right, Qt.Horizontal)
                main.resizeDocks(docks, [600, 600, 720], Qt.Horizontal)  # pixels, scaled to fit: results widest
        viewer.events.theme.connect(lambda event=None: self.apply_theme(viewer.theme))
        self.apply_theme(viewer.theme)

    def apply_theme(self, theme: str) -> None:
        for view in self._views:
            view.apply_theme(theme)

    def follow(self, job: Any, fs: dict[str, float] | None = None) -> None:
        """Show `job` from now on: clear the plots and take its event batches. ``fs`` (session ->
        Hz) puts the forecast samples on a time axis in seconds."""
        if self._job is not None:
            self._job.events.disconnect(self.add_events)
        self._job = job
        self.curves.clear()
        self.forecast.clear_source()
        self.forecast.fs = dict(fs or {})
        self.results.model = job.spec.model
        job.events.connect(self.add_events)

    def add_events(self, events: list) -> None:
        for view in self._views:
            view.add_events(events)

    def show_model(self, model: Any, recording: Any) -> None:
        """After a run: scrub this model's forecasts over `recording` (slider or napari time)."""
        source = ModelForecaster(model, recording)
        first, last = source.frame_range
        self.forecast.set_source(source, first, last, source.horizon)
        self.forecast.saver = lambda path: save_forecasts(model, recording, path)
        self.forecast.save_button.setVisible(True)
        if not self._time_connected:
            self.viewer.dims.events.current_step.connect(self._follow_time)
            self._time_connected = True

    def _follow_time(self, event: Any = None) -> None:
        self.forecast.scrub(int(self.viewer.dims.current_step[0]))


_DOCKS: dict[int, JobDocks] = {}


def docks_for(viewer: Any) -> JobDocks:
    """The viewer's plot docks, added on first use. napari hands each plugin widget its own
    proxy of the viewer, so the docks are keyed on the viewer behind the proxy."""
    real = getattr(viewer, "__wrapped__", viewer)
    key = id(real)
    if key not in _DOCKS:
        _DOCKS[key] = JobDocks(viewer)
        weakref.finalize(real, _DOCKS.pop, key, None)
    return _DOCKS[key]
