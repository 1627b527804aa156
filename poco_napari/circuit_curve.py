"""pVar per run of a circuit fit: online (dashed; flatters, J is corrected every frame) and free run
(solid); below, the training error chi2 per run."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyqtgraph as pg
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QWidget

from poco_napari.plot_base import ThemedPlots, Throttle

ONLINE, FREE, CHI2 = "#7f7f7f", "#ff7f0e", "#1f77b4"


class PvarCurve(ThemedPlots):
    """Fed by a job's event batches (``add_events``) or a finished fit's history (``set_history``)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = self.graphics.addPlot(row=0, col=0, title="fit per run (free-run pVar is the fit)")
        self.plot.setLabel("bottom", "training run")
        self.plot.setLabel("left", "pVar")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.addLegend(offset=(-10, -10))
        self.online = self.plot.plot(pen=pg.mkPen(ONLINE, width=1.5, style=Qt.DashLine), name="online (training, flatters)")
        self.free = self.plot.plot(pen=pg.mkPen(FREE, width=2), symbol="o", symbolSize=5, symbolBrush=FREE,
                                   name="free run (J frozen)")
        self.chi2_plot = self.graphics.addPlot(row=1, col=0)
        self.chi2_plot.setLabel("left", "chi2 (train)")
        self.chi2_plot.getAxis("left").enableAutoSIPrefix(False)
        self.chi2_plot.setXLink(self.plot)
        self.graphics.ci.layout.setRowStretchFactor(0, 3)
        self.chi2_curve = self.chi2_plot.plot(pen=pg.mkPen(CHI2, width=1.5))
        self.runs: list[int] = []
        self.chi2: list[float] = []
        self.pvar_online: list[float] = []
        self.free_runs: list[int] = []
        self.pvar_free: list[float] = []
        self._throttle = Throttle(self.redraw, parent=self)

    def clear(self) -> None:
        self.runs, self.chi2, self.pvar_online, self.free_runs, self.pvar_free = [], [], [], [], []
        self.redraw()

    def add_events(self, events: Sequence[dict[str, Any]]) -> None:
        for ev in events:
            if ev.get("type") == "step" and "pvar_online" in ev:
                self.runs.append(ev["step"])
                self.pvar_online.append(ev["pvar_online"])
                self.chi2.append(ev["loss"])
            elif ev.get("type") == "validation" and "pvar_free" in ev:
                self.free_runs.append(ev["step"])
                self.pvar_free.append(ev["pvar_free"])
        self._throttle.mark()

    def set_history(self, history: Sequence[dict[str, float]]) -> None:
        self.runs = [h["run"] for h in history]
        self.pvar_online = [h["pvar_online"] for h in history]
        self.chi2 = [h["chi2"] for h in history]
        self.free_runs = [h["run"] for h in history if "pvar_free" in h]
        self.pvar_free = [h["pvar_free"] for h in history if "pvar_free" in h]
        self.redraw()

    def redraw(self) -> None:
        self.online.setData(self.runs, self.pvar_online)
        self.chi2_curve.setData(self.runs, self.chi2)
        self.free.setData(self.free_runs, self.pvar_free)
