"""A matrix image with named row and column groups: J sorted by region (block lines, diverging colours
centred at 0) or the target x source current matrix. Hover reports the cell."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from qtpy.QtWidgets import QWidget

MIN_LABEL_FRACTION = 0.08  # column groups narrower than this share of the width go unlabelled (rows keep all)
Groups = list[tuple[str, int, int]]  # (name, first row/column, one past the last)


def groups_of(labels: np.ndarray) -> Groups:
    """Consecutive runs of equal labels (labels already sorted by group)."""
    out: Groups = []
    for i, name in enumerate(labels.tolist()):
        if out and out[-1][0] == name:
            out[-1] = (name, out[-1][1], i + 1)
        else:
            out.append((name, i, i + 1))
    return out


class LabelledMatrix(pg.PlotWidget):
    """``set_matrix(m, rows, cols, diverging)``; ``describe(i, j)`` is what hovering shows."""

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setTitle(title)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.addItem(self.image)
        self.invertY(True)
        self.setMouseEnabled(False, False)
        self.colorbar = pg.ColorBarItem(values=(-1, 1), colorMap=pg.colormap.get("CET-D1"), interactive=False, width=12)
        self.colorbar.setImageItem(self.image, insert_in=self.getPlotItem())
        self.lines: list[pg.InfiniteLine] = []
        self.matrix = np.zeros((1, 1))
        self.notes: np.ndarray | None = None
        self.cell_names: tuple[list[str], list[str]] = ([], [])
        self.hover = pg.TextItem(anchor=(0, 1))
        self.addItem(self.hover, ignoreBounds=True)
        self.scene().sigMouseMoved.connect(self._on_move)

    def set_matrix(self, m: np.ndarray, rows: Groups, cols: Groups, diverging: bool = True,
                   row_names: list[str] | None = None, col_names: list[str] | None = None,
                   notes: np.ndarray | None = None) -> None:
        """``notes``: optional text per cell, added to what hovering shows."""
        self.matrix = np.nan_to_num(np.asarray(m, dtype=float))
        self.notes = notes
        if diverging:
            lim = float(np.percentile(np.abs(self.matrix), 99)) or 1.0
            levels, cmap = (-lim, lim), "CET-D1"
        else:
            levels, cmap = (0.0, float(self.matrix.max()) or 1.0), "viridis"
        self.colorbar.setColorMap(pg.colormap.get(cmap))
        self.colorbar.setLevels(levels)
        self.image.setImage(self.matrix, levels=levels)
        for line in self.lines:
            self.removeItem(line)
        self.lines = []
        for groups, angle in ((rows, 0), (cols, 90)):
            for _, start, _ in groups[1:]:
                line = pg.InfiniteLine(pos=start, angle=angle, pen=pg.mkPen("#404040", width=1))
                self.addItem(line)
                self.lines.append(line)
        self.getAxis("left").setTicks([[((a + b) / 2, n) for n, a, b in rows]])
        wide = max(1, int(MIN_LABEL_FRACTION * (cols[-1][2] if cols else 1)))  # narrow groups would overlap
        self.getAxis("bottom").setTicks([[((a + b) / 2, n) for n, a, b in cols if b - a >= wide]])
        self.cell_names = (row_names or [n for n, a, b in rows for _ in range(b - a)],
                           col_names or [n for n, a, b in cols for _ in range(b - a)])
        self.autoRange(padding=0)

    def mark_columns(self, columns: np.ndarray | None) -> None:
        """Tick marks on the top edge at these columns (PINning's plastic units); None hides them."""
        if columns is None or not len(columns):
            self.hideAxis("top")
            return
        self.showAxis("top")
        top = self.getAxis("top")
        top.setTicks([[(c + 0.5, "") for c in np.asarray(columns).tolist()]])
        top.setStyle(tickLength=-6)

    def describe(self, i: int, j: int) -> str:
        rows, cols = self.cell_names
        note = f" ({self.notes[i, j]})" if self.notes is not None else ""
        return f"row {rows[i]}, column {cols[j]}: {self.matrix[i, j]:.3g}{note}"

    def _on_move(self, pos) -> None:
        p = self.image.mapFromScene(pos)
        i, j = int(p.y()), int(p.x())
        inside = 0 <= i < self.matrix.shape[0] and 0 <= j < self.matrix.shape[1]
        self.hover.setText(self.describe(i, j) if inside else "")
        if inside:
            self.hover.setPos(j, i)
