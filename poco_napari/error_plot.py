"""Forecast error by step ahead, the model against the copy baseline.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from qtpy.QtWidgets import (
    QWidget,
)

from poco_napari.plot_base import COPY_STYLE, ThemedPlots


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
