"""Settings forms shared by the docks: titled, collapsible groups (micro-sam style: the main
settings open, the rest folded)."""
from __future__ import annotations

from qtpy.QtWidgets import QFormLayout, QWidget
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
