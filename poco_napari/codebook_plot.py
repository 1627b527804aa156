"""CalM's codebook at a glance: every code's decoded shape (what a token "means"), laid out
on a grid and coloured by how often the quantizer uses it, most used first. Fed by the
`codebook` event a CalM training run emits when its quantizer stage ends."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pyqtgraph as pg
from qtpy.QtWidgets import QWidget

from poco_napari.plot_base import ThemedPlots


class CodebookView(ThemedPlots):
    """K small traces in a grid (one cell per code), colour = usage share (viridis, log scale)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = self.graphics.addPlot(row=0, col=0, title="CalM codebook: decoded codes, colour = use")
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setMouseEnabled(False, False)
        self.prototypes = np.zeros((0, 0))
        self.usage = np.zeros(0)
        self.order = np.zeros(0, dtype=int)

    def add_events(self, events: Sequence[dict[str, Any]]) -> None:
        for ev in events:
            if ev.get("type") == "codebook":
                self.show_codebook(ev["prototypes"], ev["usage"])

    def show_codebook(self, prototypes: Sequence[Sequence[float]], usage: Sequence[float]) -> None:
        self.prototypes = np.asarray(prototypes, dtype=float)
        self.usage = np.asarray(usage, dtype=float)
        self.order = np.argsort(-self.usage, kind="stable")
        self.setVisible(True)
        self.redraw()

    def redraw(self) -> None:
        self.plot.clear()
        k = len(self.prototypes)
        if k == 0:
            return
        length = self.prototypes.shape[1]
        cols = math.ceil(math.sqrt(k))
        span = max(float(np.ptp(self.prototypes)), 1e-6)
        share = np.log10(np.clip(self.usage, 1e-4, None))
        lo, hi = share.min(), max(share.max(), share.min() + 1e-6)
        cmap = pg.colormap.get("viridis")
        x = np.arange(length, dtype=float)
        for cell, code in enumerate(self.order):
            row, col = divmod(cell, cols)
            y = (self.prototypes[code] - self.prototypes[code].mean()) / span
            color = cmap.map((share[code] - lo) / (hi - lo), mode="qcolor")
            self.plot.plot(col * (length + 1) + x, -row * 1.2 + y, pen=pg.mkPen(color, width=2))
        label = pg.TextItem(f"{int((self.usage > 1e-4).sum())}/{k} codes in use", color=self.text_color, anchor=(0, 1))
        label.setPos(0, -(math.ceil(k / cols)) * 1.2)
        self.plot.addItem(label)
