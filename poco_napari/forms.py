"""Settings forms shared by the docks: titled, collapsible groups (micro-sam style: the main
settings open, the rest folded)."""
from __future__ import annotations

from qtpy.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

Rows = list[tuple[str, QWidget]]


def collapsible(title: str, rows: Rows, expanded: bool) -> QCollapsible:
    """A titled, collapsible form; a row with an empty label spans the whole width."""
    group = QCollapsible(title)
    body = QWidget()
    form = QFormLayout(body)
    form.setContentsMargins(4, 0, 4, 0)
    for label, widget in rows:
        form.addRow(label, widget) if label else form.addRow(widget)
    group.addWidget(body)
    group.expand(animate=False) if expanded else group.collapse(animate=False)
    return group


def scroll_layout(widget: QWidget) -> QVBoxLayout:
    """The layout to fill a dock with, inside a scroll area: a dock may then be shorter than its
    settings, so napari with every POCO dock open still fits a 1920x1080 screen."""
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.NoFrame)
    inner = QWidget()
    area.setWidget(inner)
    outer.addWidget(area)
    return QVBoxLayout(inner)


def seconds_text(frames: int, fs: float | None) -> str:
    """"= 1.6 s at 30 Hz": a frame count in seconds (48 frames are 1.6 s at 30 Hz, 29 s at 1.6 Hz)."""
    if not fs:
        return "(open a recording to see seconds)"
    return f"= {frames / fs:.3g} s at {fs:.3g} Hz"


class FramesField(QWidget):
    """A frame-count spin box with its length in seconds beside it, at the rate ``set_fs`` gives."""

    def __init__(self, spin: QSpinBox, parent: QWidget | None = None):
        super().__init__(parent)
        self.spin = spin
        self.seconds = QLabel()
        self.fs: float | None = None
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(spin, 1)
        row.addWidget(self.seconds)
        spin.valueChanged.connect(self._update)
        self._update()

    def set_fs(self, fs: float | None) -> None:
        self.fs = fs
        self._update()

    def _update(self, *_) -> None:
        self.seconds.setText(seconds_text(self.spin.value(), self.fs))


def set_tooltips(*tips: tuple[QWidget, str]) -> None:
    """Give every setting its explanation (shown on hover)."""
    for widget, tip in tips:
        widget.setToolTip(tip)
