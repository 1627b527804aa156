"""Region x region similarity heatmap with region names on both axes; a click picks a row, which is outlined."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Signal

COLORMAP = "viridis"


class _RowImage(pg.ImageItem):
    """An ImageItem that reports which row was clicked."""

    def __init__(self, on_row) -> None:
        super().__init__(axisOrder="row-major")
        self._on_row = on_row

    def mouseClickEvent(self, ev):  # noqa: N802 (Qt override)
        if self.image is not None and 0 <= ev.pos().y() < self.image.shape[0]:
            ev.accept()
            self._on_row(int(ev.pos().y()))


class SimilarityHeatmap(pg.PlotWidget):
    """Rows min-max normalised to [0, 1] (so the colour bar is fixed); NaN cells (no pairs) are 0."""

    row_clicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.image = _RowImage(self.row_clicked.emit)
        self.addItem(self.image)
        self.invertY(True)
        self.row_box = pg.QtWidgets.QGraphicsRectItem()
        self.row_box.setPen(pg.mkPen("w", width=2))
        self.row_box.setZValue(10)
        self.row_box.hide()
        self.addItem(self.row_box, ignoreBounds=True)
        self.setMouseEnabled(False, False)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=pg.colormap.get(COLORMAP), interactive=False, width=12)
        self.colorbar.setImageItem(self.image, insert_in=self.getPlotItem())
        self.setTitle("region similarity (row-normalised)")
        self.names: list[str] = []

    def set_matrix(self, names: list[str], matrix: np.ndarray) -> None:
        self.names = list(names)
        self.image.setImage(np.nan_to_num(np.asarray(matrix, dtype=float)), levels=(0, 1))
        ticks = [[(k + 0.5, name) for k, name in enumerate(self.names)]]
        for axis in ("left", "bottom"):
            self.getAxis(axis).setTicks(ticks)
        self.row_box.hide()
        self.autoRange(padding=0)

    def mark_row(self, k: int | None) -> None:
        """Outline row `k` (the region the ROIs are painted by), or nothing."""
        self.row_box.setVisible(k is not None)
        if k is not None:
            self.row_box.setRect(0, k, len(self.names), 1)
