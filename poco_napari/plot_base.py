"""What every plot dock shares: the napari theme's colours, distinct unit colours, a themed
pyqtgraph base widget and a repaint throttle.
"""
from __future__ import annotations

from typing import Callable

import pyqtgraph as pg
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QVBoxLayout,
    QWidget,
)

from poco_napari.colors import category_palette

REPAINT_HZ = 10
MIN_PLOT_HEIGHT = 220  # below this pyqtgraph's axis labels overlap
COPY_STYLE = Qt.DashLine


def theme_colors(theme: str) -> tuple[str, str]:
    """(background, text) hex colours of a napari theme, with a dark fallback outside napari."""
    try:
        from napari.utils.theme import get_theme

        t = get_theme(theme)
        return t.background.as_hex(), t.text.as_hex()
    except Exception:  # unknown theme name or napari missing
        return "#23242b", "#f0f1f2"


def unit_colors(n: int) -> list[tuple[int, int, int]]:
    """The plugin's categorical palette as 0-255 RGB, so plots match the ROI colours."""
    return [tuple(int(255 * c) for c in rgba[:3]) for rgba in category_palette(max(n, 1))]


class ThemedPlots(QWidget):
    """A GraphicsLayoutWidget holder that recolours its plots for a napari theme."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.graphics = pg.GraphicsLayoutWidget()
        self.setMinimumHeight(MIN_PLOT_HEIGHT)
        self.text_color = "#f0f1f2"
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)

    def apply_theme(self, theme: str) -> None:
        background, self.text_color = theme_colors(theme)
        self.graphics.setBackground(background)
        for item in self.graphics.ci.items:
            if isinstance(item, pg.PlotItem):
                for name in ("left", "bottom", "right"):
                    axis = item.getAxis(name)
                    axis.setPen(self.text_color)
                    axis.setTextPen(self.text_color)
                item.titleLabel.setText(item.titleLabel.text, color=self.text_color)
        self.redraw()

    def redraw(self) -> None:
        """Subclasses redraw their items (text-coloured ones included)."""


class Throttle:
    """Call `fn` at most `hz` times a second, and only after `mark()` asked for it."""

    def __init__(self, fn: Callable[[], None], hz: float = REPAINT_HZ, parent: QWidget | None = None):
        self._fn = fn
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._timer.setInterval(int(1000 / hz))
        self._timer.timeout.connect(fn)

    def mark(self) -> None:
        if not self._timer.isActive():
            self._timer.start()
