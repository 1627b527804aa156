"""How well each ROI is fitted: the per-ROI free-run pVar histogram, and the data and model rasters side
by side (ROIs sorted by group, then by peak time: PINning's sequence view)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from qtpy.QtWidgets import QWidget

from poco_napari.circuit_matrix import Groups
from poco_napari.plot_base import ThemedPlots

BAR = "#ff7f0e"


class PvarHistogram(ThemedPlots):
    """Counts of ROIs per free-run pVar bin (pVar below 0 is one bin: the model is worse than the mean)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = self.graphics.addPlot(row=0, col=0, title="free-run pVar per ROI")
        self.plot.setLabel("bottom", "pVar")
        self.plot.setLabel("left", "ROIs")
        self.plot.setMouseEnabled(False, False)
        self.counts = np.zeros(0)

    def set_pvars(self, pvars: np.ndarray) -> None:
        self.plot.clear()
        edges = np.linspace(0, 1, 21)
        finite = np.asarray(pvars, dtype=float)[np.isfinite(pvars)]
        self.counts = np.r_[(finite < 0).sum(), np.histogram(finite[finite >= 0], edges)[0]]
        centres = np.r_[-0.05, (edges[:-1] + edges[1:]) / 2]
        self.plot.addItem(pg.BarGraphItem(x=centres, height=self.counts, width=0.045, brush=BAR))
        worse = int(self.counts[0])
        self.plot.setTitle(f"free-run pVar per ROI (median {np.median(finite):.3f}"
                           + (f", {worse} below 0 at -0.05" if worse else "") + ")", color=self.text_color)


class RasterPair(ThemedPlots):
    """Data and free-run model as neuron x time images on one colour scale, rows in ``order``."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plots, self.images = [], []
        for col, title in enumerate(("data", "free-run model")):
            plot = self.graphics.addPlot(row=0, col=col, title=title)
            plot.invertY(True)
            plot.setLabel("bottom", "time (s)")
            image = pg.ImageItem(axisOrder="row-major")
            plot.addItem(image)
            self.plots.append(plot)
            self.images.append(image)
        self.plots[1].setYLink(self.plots[0])
        self.plots[1].setXLink(self.plots[0])
        self.shape = (0, 0)

    def set_rasters(self, data: np.ndarray, model: np.ndarray, dt: float, groups: Groups) -> None:
        """``data``/``model``: (T, N) with columns already sorted; ``groups`` label the rows."""
        lim = float(np.percentile(np.abs(data), 99)) or 1.0
        cmap = pg.colormap.get("CET-D1").getLookupTable(nPts=256)
        self.shape = data.T.shape
        for plot, image, x in zip(self.plots, self.images, (data, model)):
            image.setImage(np.asarray(x.T, dtype=float), levels=(-lim, lim), lut=cmap)
            image.setRect(0, 0, x.shape[0] * dt, x.shape[1])
            for item in [i for i in plot.items if isinstance(i, pg.InfiniteLine)]:
                plot.removeItem(item)
            for _, start, _ in groups[1:]:
                plot.addItem(pg.InfiniteLine(pos=start, angle=0, pen=pg.mkPen("#404040", width=1)))
        self.plots[0].getAxis("left").setTicks([[((a + b) / 2, n) for n, a, b in groups]])
        self.plots[1].getAxis("left").setTicks([[]])
        self.plots[0].autoRange(padding=0)
