"""Settings forms shared by the docks: titled, collapsible groups (micro-sam style: the main
settings open, the rest folded)."""
from __future__ import annotations

from qtpy.QtWidgets import QFormLayout, QFrame, QScrollArea, QVBoxLayout, QWidget
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
