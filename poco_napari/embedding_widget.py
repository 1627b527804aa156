"""Embedding dock: do POCO's unit embeddings group the ROIs by brain region?

Computes ``poco_core.analysis.embedding.analyze_model`` in a worker thread for the open recordings, then
shows the UMAP scatter (linked both ways to the shared ROI selection) and the region similarity
heatmap, writes ``cluster, umap_x, umap_y, similarity_<region>`` into every ROI layer's
``features`` table, and paints the ROIs from one of those columns with
``poco_napari.colors``. Colours are computed once over all analysed ROIs, so every layer, the
scatter and the legend agree even when a session lacks some cluster.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from napari.qt.threading import thread_worker
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QWidget,
)

from poco_core.analysis.embedding import METHODS, EmbeddingAnalysis, analyze_model
from poco_core.analysis.region_similarity import METRICS
from poco_core.base.errors import Cancelled, PocoError
from poco_core.base.events import CancelToken
from poco_core.data.recording import Recording
from poco_napari.colors import MISSING, RoiColors, apply_colors, roi_colors
from poco_napari.forms import scroll_layout
from poco_napari.plot_base import theme_colors
from poco_napari.selection import connect_viewer, selection_for
from poco_napari.similarity_plot import SimilarityHeatmap
from poco_napari.store import recordings_in, roi_layers
from poco_napari.umap_plot import UmapPlot

SIMILARITY = "similarity_"
CONTINUOUS_COLORMAP = "magma"
LEGEND_MAX = 24  # categories listed in the legend


@dataclass
class _Link:
    """Which analysis rows belong to an open recording, and at which ROI index."""

    rec: Recording
    rows: np.ndarray  # analysis rows of this recording
    roi: np.ndarray  # their ROI indices in the recording
    row_of: np.ndarray  # (n_rois,) analysis row of each ROI, -1 when not analysed


def link_recordings(result: EmbeddingAnalysis, recs: list[Recording]) -> list[_Link]:
    """Match analysis rows to open recordings by session name and ROI id."""
    links = []
    for rec in recs:
        rows = np.flatnonzero(result.session == rec.session)
        index = {roi: i for i, roi in enumerate(rec.roi_ids.tolist())}
        roi = np.array([index.get(r, -1) for r in result.roi_id[rows].tolist()], dtype=int)
        rows, roi = rows[roi >= 0], roi[roi >= 0]
        if len(rows):
            row_of = np.full(rec.n_rois, -1)
            row_of[roi] = rows
            links.append(_Link(rec, rows, roi, row_of))
    return links


class EmbeddingWidget(QWidget):
    """Dock: choose a checkpoint (or `set_model`), Compute, then explore and paint."""

    analysis_done = Signal(object)  # EmbeddingAnalysis, once shown
    painted = Signal(str)  # features column the ROIs are painted by
    _progressed = Signal(dict)  # engine progress events, crossing from the worker thread

    def __init__(self, napari_viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        connect_viewer(napari_viewer)
        self.result: EmbeddingAnalysis | None = None
        self.colors: RoiColors | None = None
        self._model: Any = None
        self._links: list[_Link] = []
        self._cancel: CancelToken | None = None
        self._build()
        self._progressed.connect(lambda e: self.status.setText(f"{e['stage']} ({e['step']}/{e['total']})..."))
        self.umap.rows_picked.connect(self._select_rows)
        self.heatmap.row_clicked.connect(lambda k: self.paint_by(SIMILARITY + self.heatmap.names[k]))
        napari_viewer.events.theme.connect(lambda e: self._apply_theme())
        self._apply_theme()

    # -- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        self.checkpoint = QLineEdit(placeholderText="POCO or CalM checkpoint (.pt)")
        self.checkpoint.textEdited.connect(lambda _: setattr(self, "_model", None))
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.checkpoint)
        row.addWidget(browse)
        self.method = QComboBox()
        self.method.addItems(METHODS)
        self.n_clusters = QSpinBox(minimum=1, maximum=100, value=1, specialValueText="auto (silhouette)")
        self.method.currentTextChanged.connect(lambda m: self.n_clusters.setEnabled(m == "kmeans"))
        self.metric = QComboBox()
        self.metric.addItems(METRICS)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1)
        form = QFormLayout()
        form.addRow("Model", row)
        form.addRow("Clustering", self.method)
        form.addRow("Clusters", self.n_clusters)
        form.addRow("Similarity", self.metric)
        form.addRow("Seed", self.seed)
        self.compute_button = QPushButton("Compute")
        self.compute_button.clicked.connect(self.compute)
        self.cancel_button = QPushButton("Cancel", enabled=False)
        self.cancel_button.clicked.connect(lambda: self._cancel and self._cancel.cancel())
        self.save_button = QPushButton("Save table...", enabled=False)
        self.save_button.setToolTip("Write the per-ROI embedding, UMAP and cluster table as poco embed --out does "
                                    "(.csv, plus region similarity; or .h5)")
        self.save_button.clicked.connect(self._save_dialog)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compute_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.save_button)
        self.status = QLabel("Choose a checkpoint, open its recordings, then Compute.", wordWrap=True)
        self.point_colors = QComboBox()
        self.point_colors.currentTextChanged.connect(lambda _: self._draw_points())
        self.paint_column = QComboBox()
        self.paint_column.activated.connect(lambda _: self.paint_by(self.paint_column.currentData()))
        colour = QFormLayout()
        colour.addRow("Points by", self.point_colors)
        colour.addRow("Paint ROIs by", self.paint_column)
        self.legend = QLabel(wordWrap=True, textFormat=Qt.RichText)
        self.colorbar = QLabel(visible=False)
        self.umap = UmapPlot()
        self.heatmap = SimilarityHeatmap()
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.umap)
        split.addWidget(self.heatmap)
        layout = scroll_layout(self)
        for part in (form, buttons):
            layout.addLayout(part)
        layout.addWidget(self.status)
        layout.addLayout(colour)
        layout.addWidget(self.legend)
        layout.addWidget(self.colorbar)
        layout.addWidget(split, stretch=1)

    def _apply_theme(self) -> None:
        background, _ = theme_colors(self.viewer.theme)
        for plot in (self.umap, self.heatmap):
            plot.setBackground(background)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "POCO or CalM checkpoint", "", "Checkpoints (*.pt *.pth);;All files (*)")
        if path:
            self.set_model(path)

    # -- compute ------------------------------------------------------------------------------
    def set_model(self, model_or_checkpoint_path: Any) -> None:
        """Analyse this model (e.g. handed over by a finished training job) or checkpoint file."""
        if isinstance(model_or_checkpoint_path, (str, Path)):
            self._model = None
            self.checkpoint.setText(str(model_or_checkpoint_path))
        else:
            self._model = model_or_checkpoint_path
            self.checkpoint.setText(f"<{type(self._model).__name__} from a training job>")

    def compute(self) -> None:
        """Run the analysis in a worker thread for the recordings open in the viewer."""
        source = self._model if self._model is not None else self.checkpoint.text().strip()
        if not source:
            self.status.setText("Choose a checkpoint first.")
            return
        self._cancel = CancelToken()
        options = dict(
            method=self.method.currentText(),
            n_clusters=self.n_clusters.value() if self.method.currentText() == "kmeans" and self.n_clusters.value() > 1 else None,
            metric=self.metric.currentText(),
            seed=self.seed.value(),
            progress=self._progressed.emit,
            cancel=self._cancel,
        )
        worker = thread_worker(analyze_model, start_thread=False)(source, recordings_in(self.viewer), **options)
        worker.returned.connect(self.show_result)
        worker.errored.connect(self._failed)
        worker.finished.connect(self._idle)
        self.compute_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Starting...")
        worker.start()

    def _idle(self) -> None:
        self.compute_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _failed(self, exc: Exception) -> None:
        self.status.setText("Cancelled." if isinstance(exc, Cancelled) else f"Analysis failed: {exc}")

    # -- results ------------------------------------------------------------------------------
    def show_result(self, result: EmbeddingAnalysis) -> None:
        """Show an analysis: features columns, scatter, heatmap, ROIs painted by cluster."""
        for link in self._links:
            selection_for(link.rec).changed.disconnect(self._show_selection)
        self.result = result
        self.save_button.setEnabled(True)
        self._links = link_recordings(result, recordings_in(self.viewer))
        for link in self._links:
            self._write_features(link)
            selection_for(link.rec).changed.connect(self._show_selection)
        unmatched = "" if self._links else " No open recording matches the model's sessions, so no ROIs are painted."
        self.status.setText(self._describe(result) + unmatched)
        groups = ["cluster"] + (["region"] if result.region is not None else [])
        self.point_colors.blockSignals(True)
        self.point_colors.clear()
        self.point_colors.addItems(groups)
        self.point_colors.blockSignals(False)
        self.paint_column.clear()
        for column in groups:
            self.paint_column.addItem(column, column)
        for name in result.region_names:
            self.paint_column.addItem(f"similarity to {name}", SIMILARITY + name)
        self._draw_points()
        self.heatmap.setVisible(result.similarity is not None)
        if result.similarity is not None:
            self.heatmap.set_matrix(result.region_names, result.similarity)
        self.paint_by("cluster")
        self._show_selection()
        self.analysis_done.emit(result)

    @staticmethod
    def _describe(result: EmbeddingAnalysis) -> str:
        rows = "what training learned (random start removed)" if result.rows == "learned" else "the rows as stored"
        text = f"{len(result.roi_id)} units, {result.n_clusters} clusters ({result.method}) of {rows}."
        rec = result.recovery
        if rec and "accuracy" in rec:
            text += (
                f" ARI vs regions {rec['ari']:.2f} (shuffled {rec['ari_shuffled']:.2f});"
                f" region classifier {rec['accuracy']:.0%} (shuffled {rec['accuracy_shuffled']:.0%}, chance {rec['chance']:.0%})."
            )
        return " ".join([text, *(f"Note: {n}." for n in result.notes)])

    def column(self, name: str) -> np.ndarray:
        """Values of one analysis column over all analysed ROIs."""
        return self.result.columns()[name]

    def _write_features(self, link: _Link) -> None:
        """Add the analysis columns to the features of this recording's ROI layers (NaN if not analysed)."""
        cols = {k: v for k, v in self.result.columns().items() if k not in ("session", "roi_id", "region")}
        for layer in roi_layers(self.viewer, link.rec):
            features = layer.features.copy()
            for name, values in cols.items():
                full = np.full(len(features), np.nan)
                full[link.roi] = values[link.rows]
                features[name] = pd.array(full, dtype="Int64") if name == "cluster" else full
            layer.features = features

    def _draw_points(self) -> None:
        name = self.point_colors.currentText()
        if self.result is None or not name:
            return
        values = self.column(name)
        self.umap.set_points(self.result.umap, roi_colors(values, categorical=True).colors, values)

    def save(self, path: str) -> list:
        """Write the analysis shown (same files as ``poco embed --out``)."""
        from poco_napari.saving import save_embedding

        if self.result is None:
            raise PocoError("compute an analysis first")
        return save_embedding(self.result, path)

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the embedding table", "embedding.csv", "CSV (*.csv);;HDF5 (*.h5)")
        if path:
            try:
                self.status.setText(f"Saved {', '.join(str(p) for p in self.save(path))}")
            except (PocoError, OSError) as exc:
                self.status.setText(f"Not saved: {exc}")

    def paint_by(self, column: str) -> None:
        """Paint every analysed ROI layer by `column` (cluster, region or similarity_<region>)."""
        if self.result is None:
            return
        categorical = not column.startswith(SIMILARITY)
        self.colors = roi_colors(self.column(column), categorical=categorical, colormap=CONTINUOUS_COLORMAP)
        for link in self._links:
            colors = np.tile(MISSING, (link.rec.n_rois, 1))
            colors[link.roi] = self.colors.colors[link.rows]
            for layer in roi_layers(self.viewer, link.rec):
                apply_colors(layer, colors)
                layer.metadata["poco_color_by"] = column
        self.paint_column.setCurrentIndex(max(self.paint_column.findData(column), 0))
        region = column[len(SIMILARITY):] if column.startswith(SIMILARITY) else None
        self.heatmap.mark_row(self.heatmap.names.index(region) if region in self.heatmap.names else None)
        self._show_legend(column)
        self.painted.emit(column)

    def _show_legend(self, column: str) -> None:
        """Categories with their colours, or the colour bar of a continuous score."""
        continuous = self.colors.clim is not None
        self.colorbar.setVisible(continuous)
        if continuous:
            lo, hi = self.colors.clim
            ramp = roi_colors(np.linspace(lo, hi, 256), categorical=False, colormap=CONTINUOUS_COLORMAP, clim=(lo, hi))
            rgba = np.ascontiguousarray(np.tile((255 * ramp.colors).astype(np.uint8)[None], (12, 1, 1)))
            image = QImage(rgba.data, rgba.shape[1], rgba.shape[0], 4 * rgba.shape[1], QImage.Format_RGBA8888)
            self.colorbar.setPixmap(QPixmap.fromImage(image.copy()).scaled(200, 12))
            self.legend.setText(f"<b>{column.replace(SIMILARITY, 'similarity to ')}</b>: {lo:.2f} (left) to {hi:.2f} (right)")
            return
        items = list(self.colors.legend.items())
        parts = [f"<span style='color:{_hex(c)}'>&#9632;</span>&nbsp;{name}" for name, c in items[:LEGEND_MAX]]
        more = f" ... +{len(items) - LEGEND_MAX}" if len(items) > LEGEND_MAX else ""
        self.legend.setText(f"<b>{column}</b>: " + " &nbsp; ".join(parts) + more)

    # -- selection ----------------------------------------------------------------------------
    def _select_rows(self, rows: np.ndarray, add: bool) -> None:
        """Points picked in the scatter select their ROIs (the traces dock follows)."""
        for link in self._links:
            roi = link.roi[np.isin(link.rows, rows)]
            sel = selection_for(link.rec)
            sel.set([*sel.indices, *roi] if add else roi)

    def _show_selection(self, *_: Any) -> None:
        self.umap.highlight(self.selected_rows())

    def selected_rows(self) -> np.ndarray:
        """Analysis rows of the selected ROIs (ringed in the scatter)."""
        rows = [link.row_of[list(selection_for(link.rec).indices)] for link in self._links]
        rows = np.concatenate(rows) if rows else np.empty(0, int)
        return np.unique(rows[rows >= 0])


def _hex(rgba: np.ndarray) -> str:
    return "#" + "".join(f"{int(round(255 * c)):02x}" for c in rgba[:3])
