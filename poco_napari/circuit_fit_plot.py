"""Data against the free-run model for each selected ROI (the selection shared with the Traces dock)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QWidget

from poco_napari.plot_base import ThemedPlots, unit_colors

MAX_SHOWN = 6


class RoiFitPlot(ThemedPlots):
    """Stacked rows: data (solid) and the free-running network (dashed), offset by the largest range."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = self.graphics.addPlot(row=0, col=0, title="fit of the selected ROIs (solid data, dashed model)")
        self.plot.setLabel("bottom", "time (s)")
        self.plot.setLabel("left", "scaled activity (offset per ROI)")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.shown: list[str] = []

    def set_rois(self, t: np.ndarray, data: np.ndarray, model: np.ndarray, names: list[str], pvars: np.ndarray) -> None:
        """``data``/``model``: (T, k) columns of the selected ROIs, in selection order."""
        self.plot.clear()
        k = min(data.shape[1], MAX_SHOWN)
        self.shown = [f"{names[i]} (pVar {pvars[i]:.2f})" for i in range(k)]
        ticks = []
        spacing = 1.1 * max(float(np.ptp(data[:, :k])) if k else 1.0, 1e-6)
        for i, color in zip(range(k), unit_colors(k)):
            off = -spacing * i
            self.plot.plot(t, data[:, i] + off, pen=pg.mkPen(color, width=1))
            self.plot.plot(t, model[:, i] + off, pen=pg.mkPen("w", width=1.5, style=Qt.DashLine))
            ticks.append((off, self.shown[i]))
        self.plot.getAxis("left").setTicks([ticks])
        if not k:
            self.plot.setTitle("select ROIs (click them, or in the Traces dock) to see their fit", color=self.text_color)
        else:
            self.plot.setTitle("fit of the selected ROIs (solid data, dashed free-run model)", color=self.text_color)
