"""Forecast versus actual for the selected ROIs: the view, and the dock that shows a running job's
samples or scrubs a finished model through the recording.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from poco_napari.plot_base import (
    COPY_STYLE,
    REPAINT_HZ,
    ThemedPlots,
    Throttle,
    unit_colors,
)


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
             labels: Sequence[str], x0: int = 0, title: str = "forecast vs actual", fs: float | None = None,
             time_label: str = "time") -> None:
        """``fs`` (Hz) puts the time axis in seconds (``time_label`` names it), else in frames."""
        self.data = {"context": np.atleast_2d(context), "actual": np.atleast_2d(actual),
                     "forecast": np.atleast_2d(forecast), "labels": list(labels), "x0": x0, "title": title,
                     "fs": fs}
        self.plot.setLabel("bottom", f"{time_label} (s)" if fs else "frame")
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
        per_frame = 1.0 / d["fs"] if d.get("fs") else 1.0
        x_ctx = np.arange(d["x0"] - c, d["x0"]) * per_frame
        x_fut = np.arange(d["x0"], d["x0"] + p) * per_frame
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
        self.now_line.setPos((d["x0"] - 0.5) * per_frame)
        self.plot.setTitle(d["title"], color=self.text_color)


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
        self.save_button = QPushButton("Save forecasts...")
        self.save_button.setToolTip("Rolling forecasts over the whole recording to an .npz, as poco forecast --out writes")
        self.save_button.setVisible(False)
        self.save_button.clicked.connect(self._save_dialog)
        self.saver: Callable[[str], Any] | None = None  # path -> written file, set with a finished model
        controls = QHBoxLayout()
        for w in (self.slider, self.frame_label, self.rolling, self.copy, self.save_button):
            controls.addWidget(w)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view, 1)
        layout.addLayout(controls)
        self._forecast_at: Callable[[int], dict[str, Any]] | None = None
        self.fs: dict[str, float] = {}  # session -> Hz of the job followed, for time axes in seconds
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
                           title=f"{ev['session']}, step {ev['step']} (validation window)",
                           fs=self.fs.get(ev["session"]), time_label="time from the forecast's start")

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the forecasts", "forecasts.npz", "NumPy archive (*.npz)")
        if path and self.saver is not None:
            self.frame_label.setText(f"saved {self.saver(path)}")

    def clear_source(self) -> None:
        """Back to showing the job's validation samples."""
        self._forecast_at = None
        self.saver = None
        self.save_button.setVisible(False)
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
                                title=out["title"], fs=out.get("fs"), time_label="recording time")

    def _advance(self) -> None:
        nxt = self.slider.value() + self.slider.pageStep()
        self.scrub(self.slider.minimum() if nxt > self.slider.maximum() else nxt)
