"""A chosen target region's input currents over time: the mean over its units of each source region's
current J[a, b] r_b(t), and the external input (all of them sum to the region's total input); and the
grid of every pair's current heatmap."""
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


class CurrentGrid(ThemedPlots):
    """CURBD's figure: an M x (M + 1) grid of current heatmaps (target units x time), rows target
    region, columns source region (and "external"), all on one diverging colour scale."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.grid_shape = (0, 0)
        self.level = 1.0

    def set_currents(self, targets: list[str], sources: list[str], currents: dict[tuple[str, str], np.ndarray],
                     dt: float) -> None:
        """``currents[(source, target)]``: (T, |target|); one image per pair, time along x."""
        self.graphics.clear()
        values = np.concatenate([np.abs(c).ravel() for c in currents.values()]) if currents else np.ones(1)
        self.level = float(np.percentile(values, 99)) or 1.0
        lut = pg.colormap.get("CET-D1").getLookupTable(nPts=256)
        for i, tgt in enumerate(targets):
            for j, src in enumerate(sources):
                c = currents[(src, tgt)]
                plot = self.graphics.addPlot(row=i, col=j)
                plot.setTitle(f"{src} \u2192 {tgt}", color=self.text_color, size="8pt")
                plot.invertY(True)
                if j:
                    plot.hideAxis("left")
                else:
                    plot.setLabel("left", f"{tgt} units")
                if i < len(targets) - 1:
                    plot.hideAxis("bottom")
                else:
                    plot.setLabel("bottom", "time (s)")
                image = pg.ImageItem(np.asarray(c.T, dtype=float), axisOrder="row-major", levels=(-self.level, self.level), lut=lut)
                image.setRect(0, 0, c.shape[0] * dt, c.shape[1])
                plot.addItem(image)
                plot.setMouseEnabled(False, False)
                plot.autoRange(padding=0)
        self.grid_shape = (len(targets), len(sources))
