"""The UMAP scatter: one point per ROI, drawn per colour group so 80,000 points stay fast.

Clicking a point or dragging a rectangle (left button) picks rows; shift adds to the pick.
Right-drag / wheel zoom as in any pyqtgraph plot. Picked rows are ringed; a legend names the groups.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import QRectF, Qt, Signal
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QGraphicsRectItem

POINT_SIZE = 6
RING_SIZE = 14


def qcolor(rgba: np.ndarray) -> QColor:
    return QColor(*(int(round(255 * c)) for c in np.asarray(rgba)[:4]))


class SelectBox(pg.ViewBox):
    """A ViewBox whose left-drag draws a selection rectangle instead of panning."""

    rect_selected = Signal(QRectF, bool)  # data-space rectangle, add-to-selection

    def __init__(self) -> None:
        super().__init__()
        self._band = QGraphicsRectItem()
        self._band.setPen(pg.mkPen("w", style=Qt.DashLine))
        self._band.hide()
        self.addItem(self._band, ignoreBounds=True)

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 (Qt override)
        if ev.button() != Qt.LeftButton:
            return super().mouseDragEvent(ev, axis)
        ev.accept()
        rect = QRectF(self.mapToView(ev.buttonDownPos()), self.mapToView(ev.pos())).normalized()
        if ev.isFinish():
            self._band.hide()
            self.rect_selected.emit(rect, bool(ev.modifiers() & Qt.ShiftModifier))
        else:
            self._band.setRect(rect)
            self._band.show()


class UmapPlot(pg.PlotWidget):
    """Scatter of (M, 2) positions coloured by group; emits the rows the user picks."""

    rows_picked = Signal(object, bool)  # np.ndarray of rows, add-to-selection

    def __init__(self, parent=None):
        self.box = SelectBox()
        super().__init__(parent, viewBox=self.box)
        self.setLabel("bottom", "UMAP 1")
        self.setLabel("left", "UMAP 2")
        self.pos = np.empty((0, 2))
        self._groups: list[tuple[pg.ScatterPlotItem, np.ndarray]] = []
        self.rings = pg.ScatterPlotItem(size=RING_SIZE, pen=pg.mkPen("w", width=2), brush=None)
        self.rings.setZValue(10)
        self.addItem(self.rings)
        self.legend = self.addLegend(offset=(-5, 5), labelTextSize="8pt", brush=pg.mkBrush(0, 0, 0, 150))
        self.box.rect_selected.connect(self._pick_rect)

    def set_points(self, pos: np.ndarray, colors: np.ndarray, groups: np.ndarray) -> None:
        """Show `pos` (M, 2); rows of the same `groups` value share one item and its colour."""
        for item, _ in self._groups:
            self.removeItem(item)
        self.pos = np.asarray(pos, dtype=float)
        self._groups = []
        for value in np.unique(groups):
            rows = np.flatnonzero(groups == value)
            item = pg.ScatterPlotItem(
                pos=self.pos[rows], size=POINT_SIZE, pen=None, brush=qcolor(colors[rows[0]]), data=rows, name=str(value)
            )
            item.sigClicked.connect(self._pick_points)
            self.addItem(item)
            self._groups.append((item, rows))
        self.rings.setData(pos=np.empty((0, 2)))
        self.autoRange()

    def group_colors(self) -> list[QColor]:
        """The brush colour of each drawn group (for tests and legends)."""
        return [item.opts["brush"].color() for item, _ in self._groups]

    def highlight(self, rows: np.ndarray) -> None:
        self.rings.setData(pos=self.pos[np.asarray(rows, dtype=int)])

    def _pick_points(self, item, points, ev) -> None:
        rows = np.array([p.data() for p in points], dtype=int)
        self.rows_picked.emit(rows[:1], bool(ev.modifiers() & Qt.ShiftModifier))

    def _pick_rect(self, rect: QRectF, add: bool) -> None:
        x, y = self.pos[:, 0], self.pos[:, 1]
        inside = (x >= rect.left()) & (x <= rect.right()) & (y >= rect.top()) & (y <= rect.bottom())
        self.rows_picked.emit(np.flatnonzero(inside), add)
