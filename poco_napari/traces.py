"""Traces dock: the selected ROIs' traces (suite2p style) above a population raster.

Top: selected ROIs stacked and normalised, each in the colour its ROI has in the viewer and
labelled "id · region"; a time cursor tied to napari's time slider when the anatomy is a
movie; the train/val/test split as shaded bands once preprocessing is applied. Bottom: every
ROI x time as a heatmap, sortable by any features column (region, cluster, snr...); clicking a
row selects that ROI. Both plots share the time axis (seconds) and zoom/pan together.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyqtgraph as pg
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from poco_core.data.recording import Recording
from poco_napari.colors import (
    NON_CELL_MODES,
    category_palette,
    cell_mask,
    layer_roi_colors,
    restyle,
)
from poco_napari.layers import frame_chunks
from poco_napari.recording_box import RecordingBox
from poco_napari.selection import connect_viewer, selection_for
from poco_napari.store import PerObject, follow_while_alive, preprocessed, roi_layers

MAX_TRACES = 40  # more selected ROIs than this: the first ones are drawn
RASTER_BINS = 2000  # time columns of the raster
RASTER_ROWS = 2000  # more ROIs than this: neighbouring rows (after sorting) are averaged
SPLIT_COLORS = {"train": (46, 160, 67, 60), "val": (255, 160, 0, 70), "test": (214, 39, 40, 70)}
AXIS_WIDTH = 90
MIN_HEIGHT = 300  # traces over raster still readable; lower keeps napari within a 1080p screen
MISSING_GROUP = "none"  # raster block of ROIs with no value in the sort column
HINT = "Click an ROI in the viewer (shift-click adds, Up/Down steps)"


def binned_raster(traces, n_bins: int = RASTER_BINS) -> np.ndarray:
    """(N, bins) time-binned means of (T, N) traces, each row z-scored; read in chunks."""
    n_frames, n_rois = traces.shape
    n_bins = min(n_bins, n_frames)
    sums = np.zeros((n_bins, n_rois))
    edges = np.arange(n_frames) * n_bins // n_frames
    for t0, t1 in frame_chunks(n_frames, n_rois):
        np.add.at(sums, edges[t0:t1], np.asarray(traces[t0:t1], dtype=np.float64))
    binned = (sums / np.bincount(edges, minlength=n_bins)[:, None]).T
    std = binned.std(axis=1, keepdims=True)
    return ((binned - binned.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)).astype(np.float32)


_rasters: PerObject[list] = PerObject(lambda rec: [binned_raster(rec.traces)])


def normalised(y: np.ndarray) -> np.ndarray:
    """Scale a trace into [0, 0.9] by its 0.5-99.5th percentiles, so stacked traces don't overlap."""
    lo, hi = np.percentile(y, [0.5, 99.5])
    return np.clip((y - lo) / (hi - lo if hi > lo else 1.0), 0, 1) * 0.9


def roi_label(features: pd.DataFrame, row: int, roi_id: str) -> str:
    """"id · region", and "not a cell" / "not in the model" where that applies; no placeholder region."""
    parts = [str(roi_id)]
    region = str(features["region"].iloc[row]) if "region" in features else ""
    if region not in ("", "unassigned", "nan"):
        parts.append(region)
    cells = cell_mask(features)
    if cells is not None and not cells[row]:
        parts.append("not a cell")
    if "in_model" in features and not bool(features["in_model"].iloc[row]):
        parts.append("not in the model")
    return " · ".join(parts)


def group_labels(column: pd.Series) -> np.ndarray:
    """Category names of a features column, every missing value (NaN, None, pd.NA) as one "none"
    group: missing values compare unequal, so they would otherwise each start a block."""
    missing = column.isna().to_numpy()
    labels = column.astype(object).to_numpy().copy()
    labels[missing] = MISSING_GROUP
    return labels.astype(str)


def raster_order(column: pd.Series) -> np.ndarray:
    """ROI order sorted by a features column, stable, missing values last as one block."""
    missing = column.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(dtype=float, na_value=np.nan)
    else:
        values = group_labels(column)
    present = np.flatnonzero(~missing)
    return np.r_[present[np.argsort(values[present], kind="stable")], np.flatnonzero(missing)].astype(int)


class TracesWidget(QWidget):
    """Dock widget; ``napari_viewer`` is injected by napari."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.recording: Recording | None = None
        self._curves: dict[int, pg.PlotDataItem] = {}
        connect_viewer(napari_viewer)

        self.recording_box = RecordingBox(napari_viewer)
        self.sort_box = QComboBox()
        self.split_legend = QLabel()
        top = QHBoxLayout()
        top.addWidget(QLabel("Recording"))
        top.addWidget(self.recording_box, 1)
        top.addWidget(QLabel("Raster order"))
        top.addWidget(self.sort_box)
        self.non_cells = QComboBox()
        self.non_cells.addItems(NON_CELL_MODES)
        self.non_cells.setToolTip("How ROIs the pipeline did not classify as cells (suite2p iscell, "
                                  "CaImAn accepted) are drawn in the viewer: in colour, grey, or hidden")
        self.outline = QCheckBox("outlines")
        self.outline.setToolTip("Draw ROIs as outlines, so the anatomy under them stays visible")
        top.addWidget(QLabel("non-cells"))
        top.addWidget(self.non_cells)
        top.addWidget(self.outline)
        self.sort_box.setToolTip("Order of the raster's rows: any column of the ROI layer's features table")

        self.plot = pg.PlotWidget(background="k")
        self.plot.setLabel("bottom", "time", units="s")
        self.plot.getAxis("left").setTicks([[]])
        self.plot.setMouseEnabled(x=True, y=True)
        self.cursor = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("w", width=1))
        self.cursor.setZValue(20)
        self.plot.addItem(self.cursor)
        self.raster = pg.PlotWidget(background="k")
        self.raster.setLabel("bottom", "time", units="s")
        self.raster.setXLink(self.plot)
        self.raster_image = pg.ImageItem(axisOrder="row-major")
        self.raster_image.setColorMap(pg.colormap.get("inferno"))
        self.raster.addItem(self.raster_image)
        self.raster.invertY(True)
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(self.plot)
        splitter.addWidget(self.raster)
        splitter.setSizes([600, 300])
        for plot in (self.plot, self.raster):
            plot.getAxis("left").setWidth(AXIS_WIDTH)  # same width: the linked time axes line up
        self.setMinimumHeight(MIN_HEIGHT)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.split_legend)
        self.setFocusPolicy(Qt.StrongFocus)

        self._labels: list[pg.TextItem] = []
        self._bands: list[pg.LinearRegionItem] = []
        self._row_marks: list[pg.InfiniteLine] = []
        self._order = np.arange(0)
        self._rows_per_line = 1
        self._watched_layer = None

        self.non_cells.currentTextChanged.connect(lambda _: self._restyle())
        self.outline.toggled.connect(lambda _: self._restyle())
        self.recording_box.recording_changed.connect(self.set_recording)
        self.sort_box.currentTextChanged.connect(lambda _: self._draw_raster())
        self.plot.sigXRangeChanged.connect(self._place_labels)
        self.cursor.sigPositionChanged.connect(self._on_cursor_dragged)
        self.raster.scene().sigMouseClicked.connect(self._on_raster_click)
        napari_viewer.layers.events.inserted.connect(self._fill_sort_box)
        napari_viewer.dims.events.current_step.connect(self._follow_time)
        follow_while_alive(preprocessed.changed, self._on_preprocessed, self)
        self.set_recording(self.recording_box.recording)

    # -- public -------------------------------------------------------------------------------
    def set_recording(self, rec: Recording | None) -> None:
        """Show this recording (its selection, raster, split bands)."""
        if rec is self.recording:
            return
        if self.recording is not None:
            selection_for(self.recording).changed.disconnect(self._draw_traces)
        self.recording = rec
        self.recording_box.set_recording(rec)
        if rec is not None:
            selection_for(rec).changed.connect(self._draw_traces)
            self._fill_sort_box()
        self._draw_traces()
        self._draw_raster()
        self._draw_bands()
        if rec is not None:
            self.plot.setXRange(0, rec.duration_s, padding=0.01)

    def curve(self, index: int) -> pg.PlotDataItem | None:
        """The curve drawing ROI ``index`` of the current recording, if shown."""
        return self._curves.get(index)

    @property
    def shown_rois(self) -> tuple[int, ...]:
        """ROI indices drawn, top to bottom."""
        return tuple(self._curves)

    def split_bands(self) -> list[tuple[str, float, float]]:
        """(split, start s, stop s) of the shaded bands."""
        return [(band.split_name, *band.getRegion()) for band in self._bands]

    def keyPressEvent(self, event) -> None:  # noqa: N802 (Qt)
        step = {Qt.Key_Down: 1, Qt.Key_Up: -1}.get(event.key())
        if step and self.recording is not None:
            selection_for(self.recording).step(step)
        else:
            super().keyPressEvent(event)

    def _restyle(self) -> None:
        """Apply the non-cell and outline choices to the current recording's ROI layers."""
        if self.recording is None:
            return
        for layer in roi_layers(self.viewer, self.recording):
            restyle(layer, non_cells=self.non_cells.currentText(), outline=self.outline.isChecked())

    # -- recording --------------------------------------------------------------------------
    def _roi_layer(self):
        """The recording's first ROI layer; its colour changes redraw the traces."""
        layers = roi_layers(self.viewer, self.recording) if self.recording is not None else []
        layer = layers[0] if layers else None
        if layer is not None and layer is not self._watched_layer:
            events = layer.events
            (events.colormap if "colormap" in events.emitters else events.face_color).connect(self._draw_traces)
            self._watched_layer = layer
        return layer

    def _features(self) -> pd.DataFrame:
        layer = self._roi_layer()
        if layer is not None:
            return layer.features
        rec = self.recording
        return pd.DataFrame({"roi_id": rec.roi_ids, "region": rec.regions if rec.regions is not None else ""})

    # -- stacked traces -----------------------------------------------------------------------
    def _draw_traces(self, *_) -> None:
        for item in [*self._curves.values(), *self._labels]:
            self.plot.removeItem(item)
        self._curves, self._labels = {}, []
        rec = self.recording
        shown = selection_for(rec).indices[:MAX_TRACES] if rec is not None else ()
        self.plot.setTitle(HINT if not shown else f"{rec.session}: {len(selection_for(rec).indices)} ROIs selected")
        self._mark_raster_rows()
        if not shown:
            return
        layer = self._roi_layer()
        colors = layer_roi_colors(layer, shown) if layer is not None else category_palette(len(shown))
        features = self._features()
        t = np.arange(rec.n_frames) / rec.fs
        for k, (i, color) in enumerate(zip(shown, colors)):
            offset = len(shown) - 1 - k
            y = normalised(np.asarray(rec.traces[:, i], dtype=np.float32)) + offset
            rgb = tuple(int(255 * c) for c in color[:3])
            curve = pg.PlotDataItem(t, y, pen=pg.mkPen(rgb, width=1), skipFiniteCheck=True)
            self.plot.addItem(curve)
            curve.setDownsampling(auto=True, method="peak")  # after addItem: pyqtgraph 0.14 needs the view
            curve.setClipToView(True)
            self._curves[i] = curve
            label = pg.TextItem(roi_label(features, i, rec.roi_ids[i]), color=rgb, anchor=(0, 0), fill=(0, 0, 0, 160))
            label.setPos(0, offset + 0.95)
            label.setZValue(30)
            self.plot.addItem(label, ignoreBounds=True)  # labels follow the view; must not resize it
            self._labels.append(label)
        self.plot.setYRange(-0.1, len(shown) + 0.05, padding=0)
        self._place_labels()

    def _place_labels(self, *_) -> None:
        x0 = self.plot.viewRange()[0][0]
        for label in self._labels:
            label.setPos(x0, label.pos().y())

    # -- time cursor --------------------------------------------------------------------------
    def _movie_axis(self) -> bool:
        anatomy = None if self.recording is None else self.recording.anatomy
        return anatomy is not None and getattr(anatomy, "ndim", 2) == 3 and anatomy.shape[0] == self.recording.n_frames

    def _follow_time(self, event=None) -> None:
        visible = self._movie_axis()
        self.cursor.setVisible(visible)
        if visible:
            frame = self.viewer.dims.current_step[0]
            self.cursor.blockSignals(True)
            self.cursor.setValue(frame / self.recording.fs)
            self.cursor.blockSignals(False)

    def _on_cursor_dragged(self) -> None:
        if self._movie_axis():
            frame = int(np.clip(round(self.cursor.value() * self.recording.fs), 0, self.recording.n_frames - 1))
            self.viewer.dims.set_current_step(0, frame)

    # -- split bands --------------------------------------------------------------------------
    def _on_preprocessed(self, rec: Recording, data) -> None:
        if rec is self.recording:
            self._draw_bands()

    def _draw_bands(self) -> None:
        for band in self._bands:
            self.plot.removeItem(band)
        self._bands = []
        self._follow_time()
        data = None if self.recording is None else preprocessed.get(self.recording)
        if data is None:
            self.split_legend.setText("")
            return
        fs = self.recording.fs
        for split, ranges in data.ranges.items():
            for start, stop in ranges:
                band = pg.LinearRegionItem((start / fs, stop / fs), movable=False,
                                           brush=pg.mkBrush(SPLIT_COLORS[split]), pen=pg.mkPen(None))
                band.split_name = split
                band.setZValue(-10)
                self.plot.addItem(band)
                self._bands.append(band)
        self.split_legend.setText("Split (preprocessing applied): " + "  ".join(
            f'<span style="color: rgb{SPLIT_COLORS[s][:3]}">&#9632;</span> {s}' for s in data.ranges))

    # -- raster -------------------------------------------------------------------------------
    def _fill_sort_box(self, event=None) -> None:
        if self.recording is None:
            return
        current = self.sort_box.currentText()
        columns = [c for c in self._features().columns if c not in ("index", "roi_id")]
        self.sort_box.blockSignals(True)
        self.sort_box.clear()
        self.sort_box.addItems(["recording order", *columns])
        self.sort_box.setCurrentText(current if current in columns else ("region" if "region" in columns else "recording order"))
        self.sort_box.blockSignals(False)

    def _draw_raster(self) -> None:
        rec = self.recording
        if rec is None:
            self.raster_image.clear()
            return
        raster = _rasters(rec)[0]
        features = self._features()
        key = self.sort_box.currentText()
        self._order = raster_order(features[key]) if key in features else np.arange(rec.n_rois)
        rows = raster[self._order]
        self._rows_per_line = -(-len(rows) // RASTER_ROWS)
        if self._rows_per_line > 1:
            pad = (-len(rows)) % self._rows_per_line
            rows = np.pad(rows, ((0, pad), (0, 0)), mode="edge")
            rows = rows.reshape(-1, self._rows_per_line, rows.shape[1]).mean(axis=1)
        self.raster_image.setImage(rows, levels=(-1.0, 3.0))
        self.raster_image.setRect(pg.QtCore.QRectF(0, 0, rec.duration_s, len(rows)))
        self.raster.setLabel("left", f"ROIs by {key}")
        self._group_ticks(features, key)
        self._mark_raster_rows()

    def _group_ticks(self, features: pd.DataFrame, key: str) -> None:
        """Name each block of equal values on the raster's left axis when sorted by a category."""
        axis = self.raster.getAxis("left")
        if key not in features or pd.api.types.is_float_dtype(features[key]):
            axis.setTicks(None)
            return
        values = group_labels(features[key])[self._order]
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        ends = np.r_[starts[1:], len(values)]
        axis.setTicks([[((s + e) / 2 / self._rows_per_line, str(values[s])) for s, e in zip(starts, ends)]])

    def _mark_raster_rows(self) -> None:
        for mark in self._row_marks:
            self.raster.removeItem(mark)
        self._row_marks = []
        if self.recording is None or len(self._order) != self.recording.n_rois:
            return
        position = np.empty_like(self._order)
        position[self._order] = np.arange(len(self._order))
        for i in selection_for(self.recording).indices[:MAX_TRACES]:
            row = position[i] // self._rows_per_line + 0.5
            mark = pg.InfiniteLine(row, angle=0, pen=pg.mkPen("c", width=1, style=Qt.DashLine))
            self.raster.addItem(mark)
            self._row_marks.append(mark)

    def _on_raster_click(self, event) -> None:
        if self.recording is None or event.button() != Qt.LeftButton:
            return
        point = self.raster.getPlotItem().vb.mapSceneToView(event.scenePos())
        row = int(point.y()) * self._rows_per_line
        if 0 <= row < len(self._order):
            add = bool(event.modifiers() & Qt.ShiftModifier)
            selection_for(self.recording).select(int(self._order[row]), add=add)
