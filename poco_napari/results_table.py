"""The per-session results table of a job (score, MSE against copy) and the dock around it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from poco_napari.codebook_plot import CodebookView
from poco_napari.error_plot import ErrorByStep


class ScoreTable(QTableWidget):
    """Per-session score and MSE beside the baselines: copy (its score is 0 by definition) and,
    when the engine reports them, the mean and a smoothed copy, so a score can be read honestly;
    and the Pearson r of forecast and actual (CalM's metric; none for a constant forecast)."""

    BASE = (("score", "score"), ("mse", "MSE"), ("copy_mse", "copy MSE"))
    BASELINES = (("mean_mse", "mean MSE"), ("mean_score", "mean score"),
                 ("smooth_mse", "smoothed-copy MSE"), ("smooth_score", "smoothed-copy score"), ("pearson", "Pearson r"))
    COLUMNS = ("session", *(label for _, label in BASE), "split")

    def __init__(self, parent: QWidget | None = None):
        super().__init__(0, len(self.COLUMNS), parent)
        self.setHorizontalHeaderLabels(self.COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QTableWidget.NoEditTriggers)
        self.horizontalHeader().setStretchLastSection(True)
        self.setToolTip("score = 1 - MSE / copy MSE (0: no better than repeating the last frame). "
                        "The mean and smoothed-copy baselines show how much of a score is denoising.")
        self.diagnosis: list[str] = []
        self.sessions: dict[str, dict[str, Any]] = {}

    def show_scores(self, sessions: dict[str, dict[str, Any]], split: str) -> None:
        self.sessions = dict(sessions)
        extra = [(k, label) for k, label in self.BASELINES if any(m.get(k) is not None for m in sessions.values())]
        keys = [*self.BASE, *extra]
        headers = ["session", *(label for _, label in keys), "split"]
        self.setColumnCount(len(headers))
        self.setHorizontalHeaderLabels(headers)
        self.setRowCount(len(sessions))
        for row, (name, m) in enumerate(sessions.items()):
            cells = (name, *(_fmt(m.get(k)) for k, _ in keys), split)
            for col, text in enumerate(cells):
                self.setItem(row, col, QTableWidgetItem(text))
        self.diagnosis = [f"{name}: {m['diagnosis']}" for name, m in sessions.items() if m.get("diagnosis")]
        self.resizeColumnsToContents()

    def column(self, header: str) -> int | None:
        """Index of the column with this header, or None."""
        for col in range(self.columnCount()):
            if self.horizontalHeaderItem(col).text() == header:
                return col
        return None

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
        self.model = "model"  # name of the model whose scores are shown (set by the job docks)
        self.split = "test"
        self.diagnosis = QLabel()
        self.diagnosis.setWordWrap(True)
        self.diagnosis.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.save_button = QPushButton("Save scores...")
        self.save_button.setToolTip("Write this table as CSV or JSON (the columns poco evaluate writes)")
        self.save_button.clicked.connect(self._save_dialog)
        side = QVBoxLayout()
        side.addWidget(self.table, 1)
        side.addWidget(self.diagnosis)
        side.addWidget(self.save_button)
        layout = QHBoxLayout(self)  # side by side: the dock stays as short as one plot
        layout.setContentsMargins(0, 0, 0, 0)
        self.table.setMinimumHeight(120)
        self.codebook = CodebookView()  # shown once a CalM run reports its codebook
        self.codebook.setVisible(False)
        layout.addWidget(self.errors, 2)
        layout.addLayout(side, 3)
        layout.addWidget(self.codebook, 3)

    def apply_theme(self, theme: str) -> None:
        self.errors.apply_theme(theme)
        self.codebook.apply_theme(theme)

    def add_events(self, events: Sequence[dict[str, Any]]) -> None:
        self.codebook.add_events(events)
        for ev in events:
            if ev.get("type") == "validation" and ev.get("per_session"):
                self.show_scores(ev["per_session"], "val")
            elif ev.get("type") == "done":
                test = ev.get("metrics", {}).get("test", {}).get("sessions", {})
                if test:
                    self.show_scores(test, "test")
                    self.errors.show_metrics(test)

    def show_scores(self, sessions: dict[str, dict[str, Any]], split: str) -> None:
        """Fill the table (and the diagnosis line) from evaluate's per-session metrics."""
        self.split = split
        self.table.show_scores(sessions, split)
        self.diagnosis.setText("\n".join(self.table.diagnosis))
        self.diagnosis.setVisible(bool(self.table.diagnosis))

    def save_scores(self, path: str | Path) -> Path:
        """Write the scores shown: ``.json`` as ``{"split", "sessions"}``, else CSV, one row per session."""
        from poco_napari.saving import save_score_table

        return save_score_table(self.table.sessions, self.split, path, model=self.model)

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the scores", "scores.csv", "CSV (*.csv);;JSON (*.json)")
        if path:
            self.save_scores(path)
