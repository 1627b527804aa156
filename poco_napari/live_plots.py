"""The Live dock's plots: a display ring buffer, stacked traces with forecasts drawn ahead of the
incoming frames, and a raster of every unit.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QWidget,
)

from poco_core.live import Forecast
from poco_napari.plot_base import ThemedPlots

WINDOW_S = 60.0  # seconds of history shown
MAX_WINDOW_FRAMES = 3000
MAX_TRACES = 8
FRAME_DRAW_HZ = 10.0  # redraws for frames alone while a model forecasts (forecasts are drawn at once)
RASTER_ROWS = 1000  # more units than this: every k-th row is shown
OFFSET = 4.0  # z units between stacked traces
VIEW_WINDOWS = 4  # the view shows this many context+horizon windows (at least MIN_VIEW_S) up to now + P
MIN_VIEW_S = 10.0
AHEAD_PEN = pg.mkPen("#ffffff", width=3)
PAST_PEN = pg.mkPen("#ffffff", width=2, style=Qt.DashLine)


class DisplayBuffer:
    """The last ``capacity`` unit-space frames in a ring (GUI thread only); reads take only the columns drawn."""

    def __init__(self, n_units: int, capacity: int):
        self._buf = np.full((capacity, n_units), np.nan, np.float32)
        self._pos = 0  # ring slot of the oldest frame
        self.end = 0  # absolute index of the frame after the newest

    @property
    def n_units(self) -> int:
        return self._buf.shape[1]

    def extend(self, units: np.ndarray, end: int) -> None:
        cap = len(self._buf)
        units = units[-cap:]
        self._buf[(self._pos + np.arange(len(units))) % cap] = units
        self._pos = (self._pos + len(units)) % cap
        self.end = end

    @property
    def capacity(self) -> int:
        return len(self._buf)

    def recent(self, n: int, cols: np.ndarray | list[int] | slice) -> np.ndarray:
        """(n, k) values of the chosen units in the newest ``n`` frames, oldest first (NaN before the
        first frame); only those rows are read, so drawing what is in view costs what is in view."""
        rows = (self._pos - n + np.arange(n)) % len(self._buf)
        return self._buf[rows][:, cols]

    def frames(self, n: int | None = None) -> np.ndarray:
        """Absolute frame indices of the rows ``recent(n, ...)`` returns (all held rows by default)."""
        return np.arange(self.end - (len(self._buf) if n is None else n), self.end)


class LivePlots(ThemedPlots):
    """Selected units with forecasts (top) and the raster of all units (bottom), time in seconds."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.traces = self.graphics.addPlot(row=0, col=0, title="selected units: frames, forecast ahead, forecast P frames ago")
        self.traces.getAxis("left").setTicks([])
        # the raster below shares this time axis, and the vertical extent is fixed by the number of
        # stacked units: no per-frame tick layout or data-bounds scan (most of a redraw at 30 Hz)
        self.traces.hideAxis("bottom")
        self.traces.disableAutoRange(axis="y")
        self.raster_plot = self.graphics.addPlot(row=1, col=0)
        self.raster_plot.setXLink(self.traces)
        self.raster_plot.disableAutoRange(axis="y")
        self.raster_plot.setLabel("bottom", "time (s)")
        self.raster = pg.ImageItem(axisOrder="row-major")
        self.raster.setLookupTable(pg.colormap.get("viridis").getLookupTable(nPts=256))
        self.raster_plot.addItem(self.raster)
        self.now_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#bbbbbb", style=Qt.DotLine))
        self.traces.addItem(self.now_line)
        self.graphics.ci.layout.setRowStretchFactor(0, 3)
        self.graphics.ci.layout.setRowStretchFactor(1, 2)
        self.curves: list[tuple[pg.PlotDataItem, pg.PlotDataItem, pg.PlotDataItem, pg.TextItem]] = []
        legend = self.traces.addLegend(offset=(-10, 5), labelTextColor="#dddddd")
        legend.addItem(pg.PlotDataItem(pen=AHEAD_PEN), "forecast ahead of now")
        legend.addItem(pg.PlotDataItem(pen=PAST_PEN), "forecast made P frames ago")

    def set_units(self, colors: list[tuple[int, int, int]]) -> None:
        """Make one (frames, forecast ahead, past forecast, label) set of items per plotted unit, in these colours."""
        for items in self.curves:
            for item in items:
                self.traces.removeItem(item)
        self.curves = []
        for color in colors:
            actual = self.traces.plot(pen=pg.mkPen(color, width=1.5))
            ahead = self.traces.plot(pen=AHEAD_PEN)
            past = self.traces.plot(pen=PAST_PEN)
            label = pg.TextItem(anchor=(0, 1), color=color)
            self.traces.addItem(label)
            self.curves.append((actual, ahead, past, label))
        rows = max(len(colors), 1)  # z-scored rows OFFSET apart, the first at 0, its label above it
        self.traces.setYRange(-OFFSET * (rows - 1) - 0.75 * OFFSET, OFFSET, padding=0)


def anchor(z: np.ndarray, forecast: Forecast | None, t0: int, row: int) -> float:
    """The drawn frame a forecast starts from; NaN when that frame is not (or no longer, or
    not yet: forecasts may arrive before the frames they were made at) in the buffer."""
    if forecast is None or not 0 <= forecast.t - t0 < len(z):
        return np.nan
    return float(z[forecast.t - t0, row])

def draw_forecast(item: pg.PlotDataItem, f: Forecast | None, unit: int, mean: np.ndarray, sd: np.ndarray,
                   offset: float, fs: float, start: float) -> None:
    """The forecast of ``unit`` for frames t+1..t+P, joined to ``start`` (the z value of frame t, its last input)."""
    if f is None:
        item.setData([], [])
        return
    x = np.arange(f.t, f.t + 1 + len(f.values)) / fs
    y = np.concatenate([[start], (f.values[:, unit] - mean[unit]) / sd[unit]]) + offset
    item.setData(x, y, connect="finite")
