"""Loss and validation curves of a training or finetuning job, fed by its event batches.
"""
from __future__ import annotations

from typing import Any, Sequence

import pyqtgraph as pg
from qtpy.QtWidgets import (
    QWidget,
)

from poco_napari.plot_base import COPY_STYLE, ThemedPlots, Throttle


class TrainingCurves(ThemedPlots):
    """Training loss and validation score, with the copy baseline (score 0)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.loss_plot = self.graphics.addPlot(row=0, col=0, title="training loss")
        self.val_plot = self.graphics.addPlot(row=1, col=0, title="validation score (1 - MSE / copy MSE)")
        self.val_plot.setXLink(self.loss_plot)
        self.val_plot.setLabel("bottom", "step")
        # connect="finite": a NaN point breaks the line between the runs of a cross-validated choice
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen("#1f77b4", width=1.5), connect="finite")
        self.val_curve = self.val_plot.plot(pen=pg.mkPen("#ff7f0e", width=2), symbol="o", symbolSize=5,
                                            symbolBrush="#ff7f0e", connect="finite")
        self.best_marker = self.val_plot.plot(pen=None, symbol="star", symbolSize=14, symbolBrush="#2ca02c")
        self.copy_line = pg.InfiniteLine(pos=0, angle=0, label="copy baseline",
                                         labelOpts={"position": 0.1, "color": "#7f7f7f"},
                                         pen=pg.mkPen("#7f7f7f", style=COPY_STYLE))
        self.val_plot.addItem(self.copy_line)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.val_steps: list[int] = []
        self.val_scores: list[float] = []
        self.best: tuple[int, float] | None = None
        self.stage_lines: list[pg.InfiniteLine] = []  # where a staged model (CalM) changes stage
        self._throttle = Throttle(self.redraw, parent=self)

    def clear(self) -> None:
        self.steps, self.losses, self.val_steps, self.val_scores, self.best = [], [], [], [], None
        for line in self.stage_lines:
            line.getViewBox().removeItem(line) if line.getViewBox() else None
        self.stage_lines = []
        self.redraw()

    def _mark_stage(self, ev: dict[str, Any]) -> None:
        """A vertical line with the stage's name in both plots (e.g. CalM's "nq" -> "dat", POCO's MLP warm-up)."""
        names = {"nq": "quantizer", "dat": "transformer", "adapt": "adapting embeddings", "mlp": "MLP warm-up",
                 "all": "all parameters"}
        for plot in (self.loss_plot, self.val_plot):
            line = pg.InfiniteLine(pos=ev["step"] - 0.5, angle=90, label=names.get(ev["stage"], ev["stage"]),
                                   labelOpts={"position": 0.9, "color": "#9467bd"}, pen=pg.mkPen("#9467bd", width=1))
            plot.addItem(line)
            self.stage_lines.append(line)

    def add_events(self, events: Sequence[dict[str, Any]]) -> None:
        for ev in events:
            if ev.get("type") == "step":
                self.steps.append(ev["step"])
                self.losses.append(ev["loss"])
            elif ev.get("type") == "stage":
                self._mark_stage(ev)
                if "crossval" in ev and self.steps:  # a new run: no line from the last one's end
                    self.steps.append(ev["step"] - 0.5)
                    self.losses.append(float("nan"))
                    self.val_steps.append(ev["step"] - 0.5)
                    self.val_scores.append(float("nan"))
                if ev.get("reset_best", ev["step"] > 1):
                    self.best = None  # the best checkpoint is chosen again within the new stage
            elif ev.get("type") == "validation" and ev.get("val_score") is not None:
                self.val_steps.append(ev["step"])
                self.val_scores.append(ev["val_score"])
                if ev.get("best"):
                    self.best = (ev["step"], ev["val_score"])
            elif ev.get("type") == "done" and ev.get("best_event_step") is not None:  # cross-validation: the run kept
                self.best = (ev["best_event_step"], ev["best_val_score"])
        self._throttle.mark()

    def redraw(self) -> None:
        self.loss_curve.setData(self.steps, self.losses)
        self.val_curve.setData(self.val_steps, self.val_scores)
        self.best_marker.setData(*(([self.best[0]], [self.best[1]]) if self.best else ([], [])))
