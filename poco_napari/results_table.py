"""The per-session results table of a job (score, MSE against copy) and the dock around it.
"""
from __future__ import annotations

from typing import Any, Sequence

from qtpy.QtWidgets import (
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from poco_napari.codebook_plot import CodebookView
from poco_napari.error_plot import ErrorByStep


class ScoreTable(QTableWidget):
    """Per-session score and MSE, with the copy baseline's MSE (its score is 0 by definition), and
    the Pearson r of forecast and actual (CalM's metric; none for a constant forecast)."""

    COLUMNS = ("session", "score", "MSE", "copy MSE", "Pearson r", "split")

    def __init__(self, parent: QWidget | None = None):
        super().__init__(0, len(self.COLUMNS), parent)
        self.setHorizontalHeaderLabels(self.COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QTableWidget.NoEditTriggers)
        self.horizontalHeader().setStretchLastSection(True)

    def show_scores(self, sessions: dict[str, dict[str, Any]], split: str) -> None:
        self.setRowCount(len(sessions))
        for row, (name, m) in enumerate(sessions.items()):
            cells = (name, _fmt(m.get("score")), _fmt(m.get("mse")), _fmt(m.get("copy_mse")), _fmt(m.get("pearson")), split)
            for col, text in enumerate(cells):
                self.setItem(row, col, QTableWidgetItem(text))
        self.resizeColumnsToContents()

    def score_of(self, session: str) -> float | None:
        """The score shown for `session` (for tests and scripts)."""
        for row in range(self.rowCount()):
            if self.item(row, 0).text() == session:
                return float(self.item(row, 1).text())
        return None


def _fmt(value: Any) -> str:
    return "" if value is None else f"{float(value):.4f}"


class ResultsDock(QWidget):
    """Error by forecast step and the per-session score table: validation while it runs, test at the end."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.errors = ErrorByStep()
        self.table = ScoreTable()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.table.setMinimumHeight(120)
        self.codebook = CodebookView()  # shown once a CalM run reports its codebook
        self.codebook.setVisible(False)
        layout.addWidget(self.errors, 3)
        layout.addWidget(self.table, 2)
        layout.addWidget(self.codebook, 3)

    def apply_theme(self, theme: str) -> None:
        self.errors.apply_theme(theme)
        self.codebook.apply_theme(theme)

    def add_events(self, events: Sequence[dict[str, Any]]) -> None:
        self.codebook.add_events(events)
        for ev in events:
            if ev.get("type") == "validation" and ev.get("per_session"):
                self.table.show_scores(ev["per_session"], "val")
            elif ev.get("type") == "done":
                test = ev.get("metrics", {}).get("test", {}).get("sessions", {})
                if test:
                    self.table.show_scores(test, "test")
                    self.errors.show_metrics(test)
