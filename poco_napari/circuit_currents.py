"""A chosen target region's input currents over time: the mean over its units of each source region's
current J[a, b] r_b(t), and the external input (all of them sum to the region's total input)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from qtpy.QtWidgets import QWidget

from poco_napari.plot_base import ThemedPlots, unit_colors


class RegionCurrents(ThemedPlots):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = self.graphics.addPlot(row=0, col=0, title="input currents of a target region")
        self.plot.setLabel("bottom", "time (s)")
        self.plot.setLabel("left", "mean current (model units)")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.legend = self.plot.addLegend(offset=(-10, 10), brush=(20, 20, 20, 170))

    def set_currents(self, target: str, currents: dict[str, np.ndarray], t: np.ndarray) -> None:
        """``currents``: source name -> (T, |target|) current, drawn as the mean over target units."""
        self.plot.clear()
        self.legend.clear()
        colors = unit_colors(len(currents))
        for (source, c), color in zip(currents.items(), colors):
            self.plot.plot(t, c.mean(axis=1), pen=pg.mkPen(color, width=1.5), name=f"{source} \u2192 {target}")
        self.plot.setTitle(f"input currents of {target} (mean over its units)", color=self.text_color)
