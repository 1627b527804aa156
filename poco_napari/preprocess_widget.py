"""Preprocessing dock: edit a PreprocessConfig, preview it on the selected ROI, apply it.

The preview fits on the whole recording (as Apply does) and transforms the selected ROI in a
worker thread; with PCA it shows PC 0. Apply runs
``poco_core.data.preprocess.prepare`` on the recording and stores the SessionData in
``poco_napari.store.preprocessed`` (the training widget reads it there); the traces dock then
shades the train/val/test split. Settings persist in ``<user config dir>/preprocess.json``
(``POCO_CONFIG_DIR`` overrides the folder).
"""
from __future__ import annotations

import json
import os
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import platformdirs
import pyqtgraph as pg
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QPushButton,
    QSpinBox,
    QWidget,
)

from poco_core.base.errors import PocoError
from poco_core.data.filters import FILTERS
from poco_core.data.preprocess import (
    PreprocessConfig,
    SessionData,
    fit_preprocess,
    prepare,
)
from poco_core.data.recording import Recording
from poco_napari.forms import FramesField, collapsible, scroll_layout, set_tooltips
from poco_napari.open_options import SourceGroup
from poco_napari.recording_box import RecordingBox
from poco_napari.selection import selection_for
from poco_napari.store import preprocessed

FILTER_NAMES = {"none": "none", "lowpass": "low-pass (zero phase)", "bandpass": "band-pass (zero phase)",
                "causal_lowpass": "causal low-pass (live)"}
FIT_ON = {"all": "whole recording", "train": "training part only"}
DEBOUNCE_MS = 150
BINNING = "target_fs" in {f.name for f in fields(PreprocessConfig)}  # temporal binning, where the engine has it
PREVIEW_WINDOW_S = 60.0  # the preview opens on the first minute, where filtering is visible


def settings_path() -> Path:
    """Where the settings are remembered between napari sessions."""
    folder = os.environ.get("POCO_CONFIG_DIR") or platformdirs.user_config_dir("poco-studio")
    return Path(folder) / "preprocess.json"


def load_settings() -> PreprocessConfig:
    """The last used settings, or the defaults when none (or unreadable ones) were saved."""
    try:
        return PreprocessConfig.from_dict(json.loads(settings_path().read_text()))
    except (OSError, ValueError, TypeError, PocoError):
        return PreprocessConfig()


def save_settings(config: PreprocessConfig) -> None:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config.to_dict(), indent=1))


def preview(rec: Recording, index: int, config: PreprocessConfig) -> tuple[np.ndarray, str, list[str]]:
    """The selected ROI after preprocessing (or PC 0 with PCA), its label, and the notes.

    The statistics are fitted on the whole recording, as Apply does (so ROI selection such as
    iscell-only reads "kept 48 of 53"); only the previewed ROI is then transformed. An ROI the
    preprocessing excludes previews as empty, with the reason."""
    state = fit_preprocess(rec, config)
    fneu = rec.extra_traces.get("Fneu") if state.neuropil_coef is not None else None
    if config.pca_k:
        return state.apply(rec.traces, fneu)[:, 0], "PC 0 (PCA replaces ROIs)", state.notes
    roi_id = str(rec.roi_ids[index])
    where = np.flatnonzero(state.keep == index)
    if not len(where):
        reason = state.drop_reasons.get(roi_id) or "not a cell (iscell-only)"
        return np.empty(0, dtype=np.float32), f"ROI {roi_id} excluded: {reason}", state.notes
    k = int(where[0])
    one = replace(state, input_ids=[roi_id], keep=np.array([0]), unit_ids=[roi_id], mean=state.mean[k:k + 1],
                  std=state.std[k:k + 1], median=None if state.median is None else state.median[k:k + 1])
    fneu_one = None if fneu is None else fneu[:, [index]]
    return one.apply(rec.traces[:, [index]], fneu_one)[:, 0], "after", state.notes


class PreprocessWidget(QWidget):
    """Dock widget; ``napari_viewer`` is injected by napari."""

    preview_updated = Signal()
    applied = Signal(object)  # SessionData

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.recording_box = RecordingBox(napari_viewer)
        self.source = SourceGroup(napari_viewer, reopened=self.recording_box.set_recording)
        self._build_form()
        self._build_preview()
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Preprocess the whole recording for training; shows the split on the traces")
        self.status = QLabel()
        self.status.setWordWrap(True)

        layout = scroll_layout(self)
        layout.addWidget(self.recording_box)
        layout.addWidget(self.source.group())
        for group in self._groups:
            layout.addWidget(group)
        layout.addWidget(self.preview_plot, 1)
        layout.addWidget(self.apply_button)
        layout.addWidget(self.status)

        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self._start_preview)
        self._request = 0
        self._alive = [True]
        self.destroyed.connect(self._alive.clear)
        self._watched: Recording | None = None
        self.set_config(load_settings())
        for widget in self._inputs:
            changed = {QCheckBox: "toggled", QComboBox: "currentIndexChanged"}.get(type(widget), "valueChanged")
            getattr(widget, changed).connect(self._on_setting_changed)
        self.apply_button.clicked.connect(self.apply)
        self.recording_box.recording_changed.connect(self._on_recording)
        self._on_recording(self.recording_box.recording)

    # -- form ---------------------------------------------------------------------------------
    def _build_form(self) -> None:
        self.dff = QCheckBox("dF/F (baseline: median)")
        self.zscore = QCheckBox("z-score each ROI")
        self.filter = QComboBox()
        for key in FILTERS:
            self.filter.addItem(FILTER_NAMES.get(key, key), key)
        self.pca = QSpinBox(minimum=0, maximum=10_000, specialValueText="off")
        self.fit_on = QComboBox()
        for key, text in FIT_ON.items():
            self.fit_on.addItem(text, key)
        self.neuropil = QCheckBox("subtract neuropil")
        self.neuropil_coef = QDoubleSpinBox(minimum=0.0, maximum=2.0, singleStep=0.05, value=0.7)
        self.iscell = QCheckBox("only ROIs classified as cells (iscell)")
        self.block_len = QSpinBox(minimum=10, maximum=1_000_000, singleStep=100, suffix=" frames")
        self.ratios = [QDoubleSpinBox(minimum=0.0, maximum=100.0, singleStep=1.0) for _ in range(3)]
        self.target_fs = QDoubleSpinBox(minimum=0.0, maximum=10_000.0, decimals=2, singleStep=1.0, suffix=" Hz",
                                        specialValueText="off (keep the recording's rate)")
        self.block_field = FramesField(self.block_len)
        self._inputs = [self.dff, self.zscore, self.filter, self.pca, self.fit_on, self.neuropil,
                        self.neuropil_coef, self.iscell, self.block_len, *self.ratios]
        if BINNING:
            self._inputs.append(self.target_fs)
        set_tooltips(
            (self.dff, "Divide by each ROI's median (dF/F) before anything else; ROIs with a baseline <= 0 are dropped"),
            (self.zscore, "Subtract each ROI's mean and divide by its standard deviation (the model works in z-units)"),
            (self.filter, "Zero-phase filters look ahead (training and offline forecasts); the causal low-pass is for live use"),
            (self.pca, "Replace the ROIs by this many principal components (off: keep ROIs)"),
            (self.fit_on, "Which frames the statistics are fitted on; 'training part only' keeps val/test unseen"),
            (self.neuropil, "Subtract coefficient x Fneu (suite2p's neuropil traces) from F"),
            (self.neuropil_coef, "suite2p's own default is 0.7"),
            (self.iscell, "Keep only ROIs suite2p's classifier (iscell) or CaImAn's evaluation (accepted) calls cells"),
            (self.block_len, "The recording is cut into blocks of this length, dealt to train/val/test in the shares below"),
            (self.target_fs, "Bin frames to this rate before everything else (e.g. 30 Hz to 5 Hz), so context and horizon span more time"),
            *((box, f"Relative share of blocks for the {name} split") for name, box in zip(("train", "val", "test"), self.ratios)),
        )
        rows = {
            "Normalisation": [("", self.dff), ("", self.zscore)],
            "Filter": [("filter", self.filter), *([("bin to", self.target_fs)] if BINNING else [])],
            "Dimensionality": [("PCA components", self.pca), ("fit statistics on", self.fit_on)],
            "suite2p": [("", self.neuropil), ("neuropil coefficient", self.neuropil_coef), ("", self.iscell)],
            "Train / val / test split": [("block length", self.block_field),
                                         *((f"{name} share", box) for name, box in zip(("train", "val", "test"), self.ratios))],
        }
        self._groups = [collapsible(title, fields, expanded=title in ("Normalisation", "Filter"))
                        for title, fields in rows.items()]
        self.suite2p_group = self._groups[list(rows).index("suite2p")]

    def _build_preview(self) -> None:
        self.preview_plot = pg.GraphicsLayoutWidget()
        self.preview_plot.setMinimumHeight(200)
        self.before_plot = self.preview_plot.addPlot(row=0, col=0, title="before (raw)")
        self.after_plot = self.preview_plot.addPlot(row=1, col=0, title="after")
        self.after_plot.setXLink(self.before_plot)
        self.after_plot.setLabel("bottom", "time", units="s")
        self.before_curve = self.before_plot.plot(pen=pg.mkPen((180, 180, 180), width=1))
        self.after_curve = self.after_plot.plot(pen=pg.mkPen((255, 200, 60), width=1))
        for plot in (self.before_plot, self.after_plot):
            plot.getAxis("left").setWidth(48)  # equal widths keep the two time axes aligned
        for curve in (self.before_curve, self.after_curve):
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)

    def config(self) -> PreprocessConfig:
        """The settings shown in the form."""
        binning = {"target_fs": self.target_fs.value() or None} if BINNING else {}
        return PreprocessConfig(
            dff=self.dff.isChecked(), zscore=self.zscore.isChecked(), filter=self.filter.currentData(),
            pca_k=self.pca.value() or None, fit_on=self.fit_on.currentData(),
            neuropil_coef=self.neuropil_coef.value() if self.neuropil.isChecked() else None,
            iscell_only=self.iscell.isChecked(), block_len=self.block_len.value(),
            split=tuple(box.value() for box in self.ratios), **binning,
        )

    def set_config(self, config: PreprocessConfig) -> None:
        """Show these settings (one preview update afterwards)."""
        for widget in self._inputs:
            widget.blockSignals(True)
        self.dff.setChecked(config.dff)
        self.zscore.setChecked(config.zscore)
        self.filter.setCurrentIndex(self.filter.findData(config.filter))
        self.pca.setValue(config.pca_k or 0)
        self.fit_on.setCurrentIndex(self.fit_on.findData(config.fit_on))
        self.neuropil.setChecked(config.neuropil_coef is not None)
        if config.neuropil_coef is not None:
            self.neuropil_coef.setValue(config.neuropil_coef)
        self.iscell.setChecked(config.iscell_only)
        self.block_len.setValue(config.block_len)
        for box, value in zip(self.ratios, config.split):
            box.setValue(value)
        self.target_fs.setValue(getattr(config, "target_fs", None) or 0.0)
        for widget in self._inputs:
            widget.blockSignals(False)
        self._on_setting_changed()

    def _on_setting_changed(self, *_) -> None:
        self.neuropil_coef.setEnabled(self.neuropil.isChecked())
        try:
            save_settings(self.config())
        except PocoError as exc:
            self.status.setText(str(exc))
            return
        except OSError as exc:
            self.status.setText(f"settings not saved: {exc}")
        self._schedule_preview()

    # -- preview ------------------------------------------------------------------------------
    @property
    def preview_index(self) -> int | None:
        """The ROI previewed: the selection's current ROI, else the first."""
        rec = self.recording_box.recording
        if rec is None:
            return None
        current = selection_for(rec).current
        return 0 if current is None else current

    def _on_recording(self, rec: Recording | None) -> None:
        if self._watched is not None:
            selection_for(self._watched).changed.disconnect(self._schedule_preview)
        self._watched = rec
        self.source.show(rec)
        self.block_field.set_fs(None if rec is None else float(rec.fs))
        if rec is not None and (rec.provenance.get("format") == "suite2p" or "Fneu" in rec.extra_traces):
            self.suite2p_group.expand(animate=False)  # neuropil and iscell matter for suite2p data
        if rec is not None:
            selection_for(rec).changed.connect(self._schedule_preview)
            self.before_plot.setXRange(0, min(rec.duration_s, PREVIEW_WINDOW_S), padding=0)
        self._schedule_preview()

    def _schedule_preview(self, *_) -> None:
        """Preview once the settings stop changing for a moment."""
        self._timer.start()

    def _start_preview(self) -> None:
        rec, index = self.recording_box.recording, self.preview_index
        self._request += 1
        if rec is None:
            self.before_curve.setData([], [])
            self.after_curve.setData([], [])
            self.status.setText("Open a recording (File > Open, or File > Open Sample > POCO).")
            return
        config, request = self.config(), self._request
        t = np.arange(rec.n_frames) / rec.fs
        self.before_curve.setData(t, np.asarray(rec.traces[:, index], dtype=np.float32))
        self.before_plot.setTitle(f"before: {rec.roi_ids[index]} (raw)")
        worker = thread_worker(preview, start_thread=False)(rec, index, config)
        alive = self._alive  # the fit takes a moment: the dock may be closed before it returns
        worker.returned.connect(lambda result: alive and self._show_preview(request, t, result))
        worker.errored.connect(lambda exc: alive and self._preview_failed(request, exc))
        worker.start()

    def _show_preview(self, request: int, t: np.ndarray, result) -> None:
        if request != self._request:
            return  # a newer preview is on its way
        after, label, notes = result
        self.after_curve.setData(t[: len(after)], after)
        self.after_plot.setTitle(label if label.startswith("ROI ") else f"{label}: {FILTER_NAMES[self.config().filter]} filter")
        self.status.setText("; ".join(notes))
        self.preview_updated.emit()

    def _preview_failed(self, request: int, exc: Exception) -> None:
        if request == self._request:
            self.after_curve.setData([], [])
            self.status.setText(f"Preview not possible: {exc}")
            self.preview_updated.emit()

    def preview_data(self) -> tuple[np.ndarray, np.ndarray]:
        """(before, after) values shown in the preview."""
        return self.before_curve.getOriginalDataset()[1], self.after_curve.getOriginalDataset()[1]

    # -- apply --------------------------------------------------------------------------------
    def apply(self) -> None:
        """Preprocess the whole recording in a worker; the result goes to ``store.preprocessed``."""
        rec = self.recording_box.recording
        if rec is None:
            return
        config = self.config()
        self.apply_button.setEnabled(False)
        self.status.setText(f"Preprocessing {rec.session}...")
        worker = thread_worker(lambda: prepare(rec, config).sessions[0], start_thread=False)()
        worker.returned.connect(lambda data: self._applied(rec, data))
        worker.errored.connect(self._apply_failed)
        worker.finished.connect(lambda: self.apply_button.setEnabled(True))
        worker.start()

    def _applied(self, rec: Recording, data: SessionData) -> None:
        preprocessed.set(rec, data)
        dropped = f"; dropped {len(data.state.dropped)} ROIs" if data.state.dropped else ""
        self.status.setText(f"Applied to {rec.session}: {data.values.shape[1]} units x {data.values.shape[0]} frames{dropped}")
        self.applied.emit(data)

    def _apply_failed(self, exc: Exception) -> None:
        self.status.setText(f"Preprocessing failed: {exc}")
        show_error(f"Preprocessing failed: {exc}")
