"""pyqtgraph docks that follow a training or finetuning job: curves, forecast vs actual, results.

Each view takes the job's event batches (``Job.events``) through ``add_events``; views that
draw continuously only store the data there and repaint from a timer at most ``REPAINT_HZ``
times a second, so a fast trainer never costs one repaint per event. Colours follow napari's
theme (``apply_theme``).
"""
from __future__ import annotations

import weakref
from typing import Any, Callable, Sequence

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox, QHBoxLayout, QLabel, QSlider, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from .colors import category_palette

REPAINT_HZ = 10
MIN_PLOT_HEIGHT = 220  # below this pyqtgraph's axis labels overlap
COPY_STYLE = Qt.DashLine


def theme_colors(theme: str) -> tuple[str, str]:
    """(background, text) hex colours of a napari theme, with a dark fallback outside napari."""
    try:
        from napari.utils.theme import get_theme

        t = get_theme(theme)
        return t.background.as_hex(), t.text.as_hex()
    except Exception:  # unknown theme name or napari missing
        return "#23242b", "#f0f1f2"


def unit_colors(n: int) -> list[tuple[int, int, int]]:
    """The plugin's categorical palette as 0-255 RGB, so plots match the ROI colours."""
    return [tuple(int(255 * c) for c in rgba[:3]) for rgba in category_palette(max(n, 1))]


class ThemedPlots(QWidget):
    """A GraphicsLayoutWidget holder that recolours its plots for a napari theme."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.graphics = pg.GraphicsLayoutWidget()
        self.setMinimumHeight(MIN_PLOT_HEIGHT)
        self.text_color = "#f0f1f2"
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)

    def apply_theme(self, theme: str) -> None:
        background, self.text_color = theme_colors(theme)
        self.graphics.setBackground(background)
        for item in self.graphics.ci.items:
            if isinstance(item, pg.PlotItem):
                for name in ("left", "bottom", "right"):
                    axis = item.getAxis(name)
                    axis.setPen(self.text_color)
                    axis.setTextPen(self.text_color)
                item.titleLabel.setText(item.titleLabel.text, color=self.text_color)
        self.redraw()

    def redraw(self) -> None:
        """Subclasses redraw their items (text-coloured ones included)."""


class Throttle:
    """Call `fn` at most `hz` times a second, and only after `mark()` asked for it."""

    def __init__(self, fn: Callable[[], None], hz: float = REPAINT_HZ, parent: QWidget | None = None):
        self._fn = fn
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._timer.setInterval(int(1000 / hz))
        self._timer.timeout.connect(fn)

    def mark(self) -> None:
        if not self._timer.isActive():
            self._timer.start()


class TrainingCurves(ThemedPlots):
    """Training loss and validation score, with the copy baseline (score 0)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.loss_plot = self.graphics.addPlot(row=0, col=0, title="training loss")
        self.val_plot = self.graphics.addPlot(row=1, col=0, title="validation score (1 - MSE / copy MSE)")
        self.val_plot.setXLink(self.loss_plot)
        self.val_plot.setLabel("bottom", "step")
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen("#1f77b4", width=1.5))
        self.val_curve = self.val_plot.plot(pen=pg.mkPen("#ff7f0e", width=2), symbol="o", symbolSize=5,
                                            symbolBrush="#ff7f0e")
        self.best_marker = self.val_plot.plot(pen=None, symbol="star", symbolSize=14, symbolBrush="#2ca02c")
        self.copy_line = pg.InfiniteLine(pos=0, angle=0, label="copy baseline",
                                         labelOpts={"position": 0.1, "color": "#7f7f7f"},
                                         pen=pg.mkPen("#7f7f7f", style=COPY_STYLE))
        self.val_plot.addItem(self.copy_line)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.val_steps: list[int] = []
        self.val_scores: list[float] = []
        self.best: tuple[int, float] | None = None
        self._throttle = Throttle(self.redraw, parent=self)

    def clear(self) -> None:
        self.steps, self.losses, self.val_steps, self.val_scores, self.best = [], [], [], [], None
        self.redraw()

    def add_events(self, events: Sequence[dict[str, Any]]) -> None:
        for ev in events:
            if ev.get("type") == "step":
                self.steps.append(ev["step"])
                self.losses.append(ev["loss"])
            elif ev.get("type") == "validation" and ev.get("val_score") is not None:
                self.val_steps.append(ev["step"])
                self.val_scores.append(ev["val_score"])
                if ev.get("best"):
                    self.best = (ev["step"], ev["val_score"])
        self._throttle.mark()

    def redraw(self) -> None:
        self.loss_curve.setData(self.steps, self.losses)
        self.val_curve.setData(self.val_steps, self.val_scores)
        self.best_marker.setData(*(([self.best[0]], [self.best[1]]) if self.best else ([], [])))


class ForecastView(ThemedPlots):
    """Context, actual next P steps, forecast (and optionally the copy baseline) per ROI, stacked.

    Arrays are units x time; ROIs are offset vertically by ``spacing`` times the data's spread.
    ``x0`` is the frame of the first forecast step, so scrubbed forecasts show recording time.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = self.graphics.addPlot(row=0, col=0, title="forecast vs actual")
        self.plot.setLabel("bottom", "frame")
        self.plot.getAxis("left").setTicks([])
        self.now_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#7f7f7f", style=Qt.DotLine))
        self.plot.addItem(self.now_line)
        self.items: list[dict[str, pg.PlotDataItem]] = []
        self.show_copy = True
        self.data: dict[str, Any] | None = None

    def show_forecast(self, context: np.ndarray, actual: np.ndarray, forecast: np.ndarray,
             labels: Sequence[str], x0: int = 0, title: str = "forecast vs actual") -> None:
        self.data = {"context": np.atleast_2d(context), "actual": np.atleast_2d(actual),
                     "forecast": np.atleast_2d(forecast), "labels": list(labels), "x0": x0, "title": title}
        self.redraw()

    def set_show_copy(self, on: bool) -> None:
        self.show_copy = on
        self.redraw()

    def _ensure_items(self, n: int) -> None:
        while len(self.items) < n:
            self.items.append({k: self.plot.plot() for k in ("context", "actual", "forecast", "copy")})
        for extra in self.items[n:]:
            for item in extra.values():
                item.setData([], [])

    def redraw(self) -> None:
        if self.data is None:
            return
        d = self.data
        ctx, act, fc = d["context"], d["actual"], d["forecast"]
        n, c, p = ctx.shape[0], ctx.shape[1], act.shape[1]
        self._ensure_items(n)
        spread = np.nanstd(np.concatenate([ctx, act], axis=1)) or 1.0
        spacing = 4.0 * spread
        x_ctx = np.arange(d["x0"] - c, d["x0"])
        x_fut = np.arange(d["x0"], d["x0"] + p)
        colors = unit_colors(n)
        dim = pg.mkColor(self.text_color)
        dim.setAlpha(140)
        for i, items in enumerate(self.items[:n]):
            off = -i * spacing
            items["context"].setData(x_ctx, ctx[i] + off, pen=pg.mkPen(dim, width=1))
            items["actual"].setData(x_fut, act[i] + off, pen=pg.mkPen(self.text_color, width=1.5))
            items["forecast"].setData(x_fut, fc[i] + off, pen=pg.mkPen(colors[i], width=2.5))
            copy = np.full(p, ctx[i, -1]) + off
            items["copy"].setData(*((x_fut, copy) if self.show_copy else ([], [])),
                                  pen=pg.mkPen(dim, width=1, style=COPY_STYLE))
        self.plot.getAxis("left").setTicks([[(-i * spacing, str(lab)) for i, lab in enumerate(d["labels"][:n])]])
        self.now_line.setPos(d["x0"] - 0.5)
        self.plot.setTitle(d["title"], color=self.text_color)


class ErrorByStep(ThemedPlots):
    """MSE at each forecast step 1..P for the model and the copy baseline (test split)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = self.graphics.addPlot(row=0, col=0, title="error by forecast step")
        self.plot.setLabel("bottom", "steps ahead")
        self.plot.setLabel("left", "MSE")
        self.plot.addLegend(offset=(10, 10))
        self.model_curve = self.plot.plot(pen=pg.mkPen("#1f77b4", width=2), symbol="o", symbolSize=5,
                                          symbolBrush="#1f77b4", name="model")
        self.copy_curve = self.plot.plot(pen=pg.mkPen("#7f7f7f", width=1.5, style=COPY_STYLE), name="copy")

    def show_metrics(self, sessions: dict[str, dict[str, Any]]) -> None:
        """Mean over sessions of ``per_step_mse`` / ``copy_per_step_mse`` (evaluate's metrics)."""
        rows = [m for m in sessions.values() if "per_step_mse" in m]
        if not rows:
            return
        model = np.mean([m["per_step_mse"] for m in rows], axis=0)
        copy = np.mean([m["copy_per_step_mse"] for m in rows], axis=0)
        steps = np.arange(1, len(model) + 1)
        self.model_curve.setData(steps, model)
        self.copy_curve.setData(steps, copy)


class ScoreTable(QTableWidget):
    """Per-session score and MSE, with the copy baseline's MSE (its score is 0 by definition)."""

    COLUMNS = ("session", "score", "MSE", "copy MSE", "split")

    def __init__(self, parent: QWidget | None = None):
        super().__init__(0, len(self.COLUMNS), parent)
        self.setHorizontalHeaderLabels(self.COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QTableWidget.NoEditTriggers)
        self.horizontalHeader().setStretchLastSection(True)

    def show_scores(self, sessions: dict[str, dict[str, Any]], split: str) -> None:
        self.setRowCount(len(sessions))
        for row, (name, m) in enumerate(sessions.items()):
            cells = (name, _fmt(m.get("score")), _fmt(m.get("mse")), _fmt(m.get("copy_mse")), split)
            for col, text in enumerate(cells):
                self.setItem(row, col, QTableWidgetItem(text))
        self.resizeColumnsToContents()

    def score_of(self, session: str) -> float | None:
        """The score shown for `session` (for tests and scripts)."""
        for row in range(self.rowCount()):
            if self.item(row, 0).text() == session:
                return float(self.item(row, 1).text())
        return None


def _fmt(value: Any) -> str:
    return "" if value is None else f"{float(value):.4f}"


class ResultsDock(QWidget):
    """Error by forecast step and the per-session score table: validation while it runs, test at the end."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.errors = ErrorByStep()
        self.table = ScoreTable()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.table.setMinimumHeight(120)
        layout.addWidget(self.errors, 3)
        layout.addWidget(self.table, 2)

    def apply_theme(self, theme: str) -> None:
        self.errors.apply_theme(theme)

    def add_events(self, events: Sequence[dict[str, Any]]) -> None:
        for ev in events:
            if ev.get("type") == "validation" and ev.get("per_session"):
                self.table.show_scores(ev["per_session"], "val")
            elif ev.get("type") == "done":
                test = ev.get("metrics", {}).get("test", {}).get("sessions", {})
                if test:
                    self.table.show_scores(test, "test")
                    self.errors.show_metrics(test)


class ForecastDock(QWidget):
    """The forecast-vs-actual view with its controls: time slider, rolling sweep, copy baseline.

    During a run it shows the job's ``forecast_sample`` events; once a model is set
    (``set_source``) the slider, or the napari time slider, scrubs through the recording and
    ``rolling`` sweeps the forecast across it, P frames per tick.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.view = ForecastView()
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setVisible(False)
        self.frame_label = QLabel("during training: validation samples")
        self.frame_label.setMinimumWidth(90)
        self.rolling = QCheckBox("rolling")
        self.rolling.setToolTip("sweep the forecast across the recording")
        self.copy = QCheckBox("copy baseline")
        self.copy.setChecked(True)
        self.copy.toggled.connect(self.view.set_show_copy)
        controls = QHBoxLayout()
        for w in (self.slider, self.frame_label, self.rolling, self.copy):
            controls.addWidget(w)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view, 1)
        layout.addLayout(controls)
        self._forecast_at: Callable[[int], dict[str, Any]] | None = None
        self._pending_frame: int | None = None
        self._throttle = Throttle(self._scrub_now, parent=self)
        self._sweep = QTimer(self)
        self._sweep.setInterval(int(1000 / REPAINT_HZ) * 2)
        self._sweep.timeout.connect(self._advance)
        self.slider.valueChanged.connect(self.scrub)
        self.rolling.toggled.connect(lambda on: self._sweep.start() if on else self._sweep.stop())

    def apply_theme(self, theme: str) -> None:
        self.view.apply_theme(theme)

    def add_events(self, events: Sequence[dict[str, Any]]) -> None:
        samples = [ev for ev in events if ev.get("type") == "forecast_sample"]
        if samples and self._forecast_at is None:
            ev = samples[-1]
            ctx = np.asarray(ev["context"])
            self.view.show_forecast(ctx, np.asarray(ev["actual"]), np.asarray(ev["forecast"]),
                           ev.get("unit_ids") or ev["rois"], x0=0,
                           title=f"{ev['session']}, step {ev['step']} (validation window)")

    def clear_source(self) -> None:
        """Back to showing the job's validation samples."""
        self._forecast_at = None
        self.rolling.setChecked(False)
        self.slider.setVisible(False)
        self.frame_label.setText("during training: validation samples")

    def set_source(self, forecast_at: Callable[[int], dict[str, Any]], first: int, last: int, step: int) -> None:
        """Scrub with `forecast_at(frame) -> dict(context, actual, forecast, labels, title)` over [first, last]."""
        self._forecast_at = forecast_at
        self.slider.setRange(first, last)
        self.slider.setSingleStep(1)
        self.slider.setPageStep(step)
        self.slider.setVisible(True)
        self.scrub(self.slider.value())

    def scrub(self, frame: int) -> None:
        """Show the forecast made at `frame` (throttled: fast slider drags compute once per tick)."""
        if self._forecast_at is None:
            return
        self._pending_frame = int(np.clip(frame, self.slider.minimum(), self.slider.maximum()))
        if self.slider.value() != self._pending_frame:
            self.slider.blockSignals(True)
            self.slider.setValue(self._pending_frame)
            self.slider.blockSignals(False)
        self._throttle.mark()

    def _scrub_now(self) -> None:
        if self._forecast_at is None or self._pending_frame is None:
            return
        frame, self._pending_frame = self._pending_frame, None
        out = self._forecast_at(frame)
        self.frame_label.setText(f"frame {frame}")
        self.view.show_forecast(out["context"], out["actual"], out["forecast"], out["labels"], x0=frame + 1,
                                title=out["title"])

    def _advance(self) -> None:
        nxt = self.slider.value() + self.slider.pageStep()
        self.scrub(self.slider.minimum() if nxt > self.slider.maximum() else nxt)


class ModelForecaster:
    """`forecast_at(t)` for ForecastDock: a trained model on one recording, in the recording's units.

    Shows the ROIs selected in the viewer (the shared selection), else the first few units.
    """

    def __init__(self, model: Any, recording: Any, n_default: int = 4):
        from poco_core.restore import session_state

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
        from .selection import selection_for

        keep = list(np.asarray(self.state.keep))
        picked = [keep.index(i) for i in selection_for(self.recording).indices if i in keep]
        return picked or list(range(min(self.n_default, len(keep))))

    def __call__(self, t: int) -> dict[str, Any]:
        from poco_core.forecast import forecast

        fc = forecast(self.model, self.recording, t)
        units = self.units()
        rois = np.asarray(self.state.keep)[units]
        traces = self.recording.traces
        return {
            "context": np.asarray(traces[t - self.context + 1:t + 1])[:, rois].T,
            "actual": np.asarray(traces[t + 1:t + self.horizon + 1])[:, rois].T,
            "forecast": fc.values[0][:, units].T,
            "labels": [self.recording.roi_ids[i] for i in rois],
            "title": f"{self.recording.session}: forecast after frame {t}",
        }


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
        window = getattr(viewer, "window", None)
        if window is not None and hasattr(window, "add_dock_widget"):
            window.add_dock_widget(self.curves, name="POCO training curves", area="bottom")
            window.add_dock_widget(self.forecast, name="POCO forecast vs actual", area="bottom")
            window.add_dock_widget(self.results, name="POCO results", area="right")
        viewer.events.theme.connect(lambda event=None: self.apply_theme(viewer.theme))
        self.apply_theme(viewer.theme)

    def apply_theme(self, theme: str) -> None:
        for view in self._views:
            view.apply_theme(theme)

    def follow(self, job: Any) -> None:
        """Show `job` from now on: clear the plots and take its event batches."""
        if self._job is not None:
            self._job.events.disconnect(self.add_events)
        self._job = job
        self.curves.clear()
        self.forecast.clear_source()
        job.events.connect(self.add_events)

    def add_events(self, events: list) -> None:
        for view in self._views:
            view.add_events(events)

    def show_model(self, model: Any, recording: Any) -> None:
        """After a run: scrub this model's forecasts over `recording` (slider or napari time)."""
        source = ModelForecaster(model, recording)
        first, last = source.frame_range
        self.forecast.set_source(source, first, last, source.horizon)
        if not self._time_connected:
            self.viewer.dims.events.current_step.connect(self._follow_time)
            self._time_connected = True

    def _follow_time(self, event: Any = None) -> None:
        self.forecast.scrub(int(self.viewer.dims.current_step[0]))


_DOCKS: dict[int, JobDocks] = {}


def docks_for(viewer: Any) -> JobDocks:
    """The viewer's plot docks, added on first use."""
    key = id(viewer)
    if key not in _DOCKS:
        _DOCKS[key] = JobDocks(viewer)
        weakref.finalize(viewer, _DOCKS.pop, key, None)
    return _DOCKS[key]
