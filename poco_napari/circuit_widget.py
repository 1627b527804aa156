"""Circuit dock: fit a data-constrained RNN (CURBD, or PINning with p < 1) to the chosen recording in a
background job, watch the free-run pVar, then look at J sorted by region, the region-by-region current
matrix, one target region's input currents over time and the fit of each selected ROI.

The same fit as ``poco circuit`` and ``poco_core.analysis.circuit.fit_circuit`` (defaults from
``CircuitConfig`` / ``DataPrep``, defined once). A banner carries the caveats: J is one of many that
reproduce the data, and the online fit during training flatters.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from poco_core.analysis.circuit import (
    CAVEATS,
    EMBEDDING_CLUSTER,
    EXTERNAL,
    CircuitFit,
    DataPrep,
    SeedEnsemble,
    circuit_job_events,
    seed_ensemble,
)
from poco_core.base.errors import PocoError
from poco_core.models.circuit_rnn import CircuitConfig, dt_factor, estimate_cost
from poco_napari.circuit_currents import CurrentGrid, RegionCurrents
from poco_napari.circuit_curve import PvarCurve
from poco_napari.circuit_fit_plot import RoiFitPlot
from poco_napari.circuit_matrix import LabelledMatrix, groups_of
from poco_napari.circuit_rasters import PvarHistogram, RasterPair
from poco_napari.forms import collapsible
from poco_napari.jobs import Job, job_queue, make_job
from poco_napari.recording_box import RecordingBox
from poco_napari.selection import connect_viewer, selection_for
from poco_napari.store import roi_layers

BANNER_STYLE = "background:#5a4a12; color:#ffe9a8; padding:6px; border-radius:4px;"
J_VIEWS = ("J", "\u0394J = J \u2212 J0 (what training changed)", "block mean of J", "block mean of \u0394J")
N_WORST = 6


def _spin(lo: float, hi: float, value: float, decimals: int = 0, step: float = 1.0, suffix: str = "") -> QDoubleSpinBox:
    box = QDoubleSpinBox(minimum=lo, maximum=hi, decimals=decimals, singleStep=step, suffix=suffix)
    box.setValue(value)
    return box


def with_embedding_clusters(viewer: Any, rec: Any) -> Any:
    """The recording with the Embeddings dock's clusters (the ``cluster`` column it writes into the ROI
    layers' features) as its groups, when it has no region labels and no assemblies; else unchanged."""
    if rec.regions is not None or "assemblies" in rec.roi_info or EMBEDDING_CLUSTER in rec.roi_info:
        return rec
    for layer in roi_layers(viewer, rec):
        features = layer.features
        if "cluster" in features and len(features) == rec.n_rois:
            values = pd.to_numeric(features["cluster"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            if np.isfinite(values).any():
                return dataclasses.replace(rec, roi_info={**rec.roi_info, EMBEDDING_CLUSTER: values})
    return rec


class CircuitWidget(QWidget):
    """Dock: settings, cost estimate, Start/Cancel, caveats, and the fit's plots (tabs)."""

    fit_shown = Signal(object)  # CircuitFit

    def __init__(self, napari_viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        connect_viewer(napari_viewer)
        self.fit: CircuitFit | None = None
        self.job: Job | None = None
        self._selection: Any = None
        self._build()
        self.recording_box.recording_changed.connect(self._on_recording)
        self._on_recording(self.recording_box.recording)

    # -- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        c, prep = CircuitConfig(), DataPrep()
        self.recording_box = RecordingBox(self.viewer)
        self.p = _spin(0.01, 1.0, c.plastic_fraction, 2, 0.05)
        self.p.setToolTip("plastic fraction p: 1 trains every connection (CURBD); < 1 only that fraction of presynaptic units (PINning)")
        self.tau_ms = _spin(1, 100000, c.tau_s * 1000, 0, 10, " ms")
        self.runs = QSpinBox(minimum=1, maximum=100000, value=c.n_train)
        self.p0 = _spin(0.001, 100, c.p0, 3, 0.1)
        self.p0.setToolTip("P0 (1/ridge): large = fast, strong updates; small = stay near the random initial J")
        self.reset_every = QSpinBox(minimum=0, maximum=100000, value=c.reset_every, specialValueText="start only", suffix=" frames")
        self.substeps = QSpinBox(minimum=0, maximum=10000, value=0, specialValueText="auto (dtRNN \u2264 \u03c4/10)")
        self.substeps.valueChanged.connect(self._update_estimate)
        self.free_every = QSpinBox(minimum=1, maximum=100000, value=c.free_every, suffix=" runs")
        self.lowpass = _spin(0, 1000, 0, 2, 0.05, " Hz")
        self.lowpass.setSpecialValueText("off")
        self.zscore = QCheckBox("z-score each ROI first", checked=prep.standardize == "zscore")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=c.seed)
        self.dt_label = QLabel()
        self.estimate = QLabel(wordWrap=True)
        for box in (self.p, self.tau_ms, self.runs, self.free_every):
            box.valueChanged.connect(self._update_estimate)
        main = collapsible("Fit", [("Recording", self.recording_box), ("Plastic fraction p", self.p),
                                   ("\u03c4 (unit time constant)", self.tau_ms), ("Training runs", self.runs),
                                   ("", self.dt_label), ("", self.estimate)], expanded=True)
        more = collapsible("More settings", [("P0 (1/ridge)", self.p0), ("Reset from data every", self.reset_every),
                                             ("Sub-steps per frame", self.substeps),
                                             ("Free-run pVar every", self.free_every), ("Low-pass targets", self.lowpass),
                                             ("", self.zscore), ("Seed", self.seed)], expanded=False)
        self.start_button = QPushButton("Start fit")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel", enabled=False)
        self.cancel_button.clicked.connect(lambda: self.job and self.job.cancel())
        self.load_button = QPushButton("Open fit...")
        self.load_button.clicked.connect(self._browse)
        self.export_button = QPushButton("Export...", enabled=False)
        self.export_button.setToolTip("Save the fit as HDF5 (reopen it here or with poco circuit --show) or as CSV tables")
        self.export_button.clicked.connect(self._export_dialog)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.cancel_button, self.load_button, self.export_button):
            buttons.addWidget(b)
        self.status = QLabel("Choose a recording and Start.", wordWrap=True)
        self.banner = QLabel(wordWrap=True, styleSheet=BANNER_STYLE)
        self.banner.setText("<b>Caveats.</b> " + " ".join(CAVEATS[:3]))
        self.n_seeds = QSpinBox(minimum=2, maximum=20, value=3, suffix=" seeds")
        self.ensemble_button = QPushButton("Refit with other seeds")
        self.ensemble_button.setToolTip("Refit with K seeds (other J0, input and plastic set) and show the mean \u00b1 sd "
                                        "of the current matrix; pairs whose mean current keeps its sign in every fit are listed")
        self.ensemble_button.clicked.connect(self.start_ensemble)
        self.ensemble: SeedEnsemble | None = None
        self._ensemble_jobs: list[Job] = []
        self.curve = PvarCurve()
        self.roi_fit = RoiFitPlot()
        self.j_image = LabelledMatrix("J (rows: target unit, columns: source unit), sorted by region")
        self.j_view = QComboBox()
        self.j_view.addItems(J_VIEWS)
        self.j_view.currentTextChanged.connect(lambda _: self._draw_j())
        self.histogram = PvarHistogram()
        self.worst_button = QPushButton("Select the worst-fitted ROIs")
        self.worst_button.setToolTip("Select the ROIs with the lowest free-run pVar (shown below and in the Traces dock)")
        self.worst_button.clicked.connect(self.select_worst)
        self.rasters = RasterPair()
        self.current_matrix = LabelledMatrix("rms current, rows target region, columns source")
        self.target = QComboBox()
        self.target.currentTextChanged.connect(lambda _: self._draw_target())
        self.kind = QComboBox()
        self.kind.addItems(["all", "excitatory", "inhibitory"])
        self.kind.currentTextChanged.connect(lambda _: self._draw_currents())
        self.region_currents = RegionCurrents()
        self.current_grid = CurrentGrid()
        currents = QWidget()
        lay = QVBoxLayout(currents)
        pick = QHBoxLayout()
        pick.addWidget(QLabel("Target region"))
        pick.addWidget(self.target, stretch=1)
        pick.addWidget(QLabel("Weights"))
        pick.addWidget(self.kind)
        self.ensemble_label = QLabel(wordWrap=True)
        lay.addWidget(self.current_matrix, stretch=1)
        lay.addWidget(self.ensemble_label)
        lay.addLayout(pick)
        lay.addWidget(self.region_currents, stretch=1)
        fit_tab = QWidget()
        lay = QVBoxLayout(fit_tab)
        lay.addWidget(self.curve, stretch=1)
        lay.addWidget(self.roi_fit, stretch=1)
        rois_tab = QWidget()
        lay = QVBoxLayout(rois_tab)
        lay.addWidget(self.histogram, stretch=1)
        lay.addWidget(self.worst_button)
        lay.addWidget(self.rasters, stretch=2)
        j_tab = QWidget()
        lay = QVBoxLayout(j_tab)
        row = QHBoxLayout()
        row.addWidget(QLabel("Show"))
        row.addWidget(self.j_view, stretch=1)
        lay.addLayout(row)
        lay.addWidget(self.j_image, stretch=1)
        self.tabs = QTabWidget()
        self.tabs.addTab(fit_tab, "Fit")
        self.tabs.addTab(rois_tab, "ROIs")
        self.tabs.addTab(j_tab, "J")
        self.tabs.addTab(currents, "Currents")
        self.tabs.addTab(self.current_grid, "Current grid")
        layout = QVBoxLayout(self)
        layout.addWidget(main)
        layout.addWidget(more)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.banner)
        seeds = QHBoxLayout()
        seeds.addWidget(self.ensemble_button, stretch=1)
        seeds.addWidget(self.n_seeds)
        layout.addLayout(seeds)
        layout.addWidget(self.tabs, stretch=1)

    # -- settings -----------------------------------------------------------------------------
    def config(self) -> CircuitConfig:
        return CircuitConfig(plastic_fraction=self.p.value(), tau_s=self.tau_ms.value() / 1000, n_train=self.runs.value(),
                             p0=self.p0.value(), reset_every=self.reset_every.value(), free_every=self.free_every.value(),
                             dt_factor=self.substeps.value() or None, seed=self.seed.value())

    def prep(self) -> DataPrep:
        return DataPrep(standardize="zscore" if self.zscore.isChecked() else "none", lowpass_hz=self.lowpass.value() or None)

    def _update_estimate(self, *_: Any) -> None:
        rec = self.recording_box.recording
        if rec is None:
            self.estimate.setText("")
            return
        try:
            cfg = self.config()
        except PocoError as exc:
            self.estimate.setText(str(exc))
            return
        f = dt_factor(1 / rec.fs, cfg)
        cost = estimate_cost(rec.n_rois, rec.n_frames, 1 / rec.fs, cfg)
        self.dt_label.setText(f"dtRNN = {1000 / rec.fs / f:.3g} ms ({f} sub-steps per frame at {rec.fs:g} Hz)"
                              + (" \u2014 1 Hz placeholder rate" if rec.provenance.get("fs_placeholder") else ""))
        self.estimate.setText(f"{rec.n_rois} units \u00d7 {rec.n_frames} frames: about {cost['seconds'] / 60:.1f} min "
                              f"on one CPU core, {cost['bytes'] / 2**20:.0f} MiB")

    def _on_recording(self, rec: Any) -> None:
        self._update_estimate()
        if self.fit is not None and rec is not None:
            self._link_selection(rec)

    # -- running ------------------------------------------------------------------------------
    def start(self) -> Job | None:
        """Queue a fit of the chosen recording; the result is written to a temporary HDF5 file."""
        job = self._queue_fit(self.config())
        if job is not None:
            self.job = job
            self.curve.clear()
            job.events.connect(self.curve.add_events)
            job.changed.connect(self._update)
            job.finished.connect(lambda: self._finished(job))
            self._update()
        return job

    def _queue_fit(self, config: CircuitConfig) -> Job | None:
        rec = self.recording_box.recording
        if rec is None:
            self.status.setText("Open a recording first.")
            return None
        rec = with_embedding_clusters(self.viewer, rec)
        try:
            out = Path(tempfile.mkdtemp(prefix="poco-circuit-")) / f"{rec.session}_circuit_seed{config.seed}.h5"
            job = make_job("circuit", [rec], events_fn=circuit_job_events, checkpoint=str(out),
                           model="circuit", model_config=config.to_dict(), preprocess=vars(self.prep()),
                           steps=config.n_train, name=f"circuit fit {rec.session} (seed {config.seed})")
        except (PocoError, OSError, ValueError) as exc:
            self.status.setText(f"Cannot start: {exc}")
            return None
        job_queue().submit(job)
        return job

    def start_ensemble(self) -> list[Job]:
        """Queue K fits with the form's settings and seeds seed, seed + 1, ...; when all are done the
        Currents tab shows the ensemble's mean +- sd (``seed_ensemble``)."""
        base = self.config().to_dict()
        jobs = [self._queue_fit(CircuitConfig.from_dict({**base, "seed": base["seed"] + k})) for k in range(self.n_seeds.value())]
        self._ensemble_jobs = [j for j in jobs if j is not None]
        for job in self._ensemble_jobs:
            job.finished.connect(self._ensemble_progress)
        self._ensemble_progress()
        return self._ensemble_jobs

    def _ensemble_progress(self) -> None:
        jobs = self._ensemble_jobs
        done = [j for j in jobs if j.status.final]
        self.ensemble_button.setEnabled(len(done) == len(jobs))
        if len(done) < len(jobs):
            self.ensemble_label.setText(f"Seed ensemble: {len(done)} of {len(jobs)} fits done.")
            return
        paths = [(j.result or {}).get("path") for j in jobs]
        fits = [CircuitFit.load(p) for p in paths if p and Path(p).is_file()]
        try:
            self.show_ensemble(seed_ensemble(fits))
        except PocoError as exc:
            self.ensemble_label.setText(f"Seed ensemble: {exc} ({len(fits)} of {len(jobs)} fits finished).")

    def show_ensemble(self, ens: SeedEnsemble) -> None:
        """The current matrix as the ensemble's rms mean; stable pairs listed (and marked on hover)."""
        self.ensemble = ens
        notes = np.array([[f"sd {ens.rms_sd[i, j]:.2g}" + (", stable" if ens.stable[i, j] else "")
                           for j in range(len(ens.sources))] for i in range(len(ens.targets))])
        self.current_matrix.set_matrix(ens.rms_mean, [(t, i, i + 1) for i, t in enumerate(ens.targets)],
                                       [(s, i, i + 1) for i, s in enumerate(ens.sources)], diverging=False, notes=notes)
        pairs = [f"{s} \u2192 {t}" for i, t in enumerate(ens.targets) for j, s in enumerate(ens.sources) if ens.stable[i, j]]
        self.ensemble_label.setText(
            f"Seed ensemble of {len(ens.pvars)} fits (free-run pVar {min(ens.pvars):.3f}-{max(ens.pvars):.3f}): rms current "
            f"mean shown; sd {ens.rms_sd.min():.2g}-{ens.rms_sd.max():.2g}. Pairs whose mean current keeps its sign "
            f"in every fit (|mean| > 2 sd): {', '.join(pairs) if pairs else 'none'}.")

    def _update(self) -> None:
        job = self.job
        if job is None:
            return
        running = not job.status.final
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        last = self.curve.pvar_free[-1] if self.curve.pvar_free else None
        eta = next((e.get("eta_s") for e in reversed(job.history) if e.get("type") == "step"), None)
        parts = [f"run {job.step}/{job.total_steps}"] if running else [job.message]
        if running and last is not None:
            parts.append(f"free-run pVar {last:.3f}")
        if running and eta is not None:
            parts.append(f"about {eta:.0f} s left")
        self.status.setText(", ".join(parts))

    def _finished(self, job: Job) -> None:
        self._update()
        path = (job.result or {}).get("path")
        if path and Path(path).is_file():
            self.show_fit(CircuitFit.load(path))

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Circuit fit", "", "Circuit fits (*.h5 *.hdf5);;All files (*)")
        if path:
            self.show_fit(CircuitFit.load(path))

    # -- results ------------------------------------------------------------------------------
    def show_fit(self, fit: CircuitFit) -> None:
        """Show a fit: pVar history, J, the current matrix and currents, and the selected ROIs' fit."""
        self.fit = fit
        self._show_settings(fit)
        self.curve.set_history(fit.history)
        order = fit.order()
        self._draw_j()
        self.histogram.set_pvars(fit.pvar_per_neuron)
        self.rasters.set_rasters(fit.data[:, order], fit.rates[:, order], fit.params["dt_data"], groups_of(fit.regions[order]))
        self.export_button.setEnabled(True)
        self.target.blockSignals(True)
        self.target.clear()
        self.target.addItems(fit.region_names)
        self.target.blockSignals(False)
        self._draw_currents()
        self.status.setText(f"Free-run pVar {fit.pvar_free:.3f} (median per ROI {np.nanmedian(fit.pvar_per_neuron):.3f}), "
                            f"{len(fit.history)} runs, p = {fit.params['config']['plastic_fraction']:g}; "
                            f"groups: {fit.params.get('region_source', '')}.")
        rec = self.recording_box.recording
        if rec is not None:
            self._link_selection(rec)
        self.fit_shown.emit(fit)

    def _show_settings(self, fit: CircuitFit) -> None:
        """The form shows the settings the fit was made with (Start refits with them)."""
        c, prep = fit.params["config"], fit.params.get("prep", {})
        self.p.setValue(c["plastic_fraction"])
        self.tau_ms.setValue(c["tau_s"] * 1000)
        self.runs.setValue(c["n_train"])
        self.p0.setValue(c["p0"])
        self.reset_every.setValue(c["reset_every"])
        self.free_every.setValue(c["free_every"])
        self.substeps.setValue(c.get("dt_factor") or 0)
        self.seed.setValue(c["seed"])
        self.lowpass.setValue(prep.get("lowpass_hz") or 0)
        self.zscore.setChecked(prep.get("standardize", "zscore") == "zscore")

    def _draw_j(self) -> None:
        """J, J - J0 or their region block means; PINning's plastic columns ticked on the top edge."""
        fit = self.fit
        if fit is None:
            return
        view = J_VIEWS.index(self.j_view.currentText())
        delta = view in (1, 3)
        if view >= 2:
            names, m = fit.block_mean("dJ" if delta else "J")
            blocks = [(n, i, i + 1) for i, n in enumerate(names)]
            self.j_image.set_matrix(m, blocks, blocks)
            self.j_image.mark_columns(None)
            return
        order = fit.order()
        groups = groups_of(fit.regions[order])
        ids = fit.roi_ids[order].tolist()
        w = fit.J - fit.J0 if delta else fit.J
        self.j_image.set_matrix(w[np.ix_(order, order)], groups, groups, row_names=ids, col_names=ids)
        partial = len(fit.plastic) < len(fit.roi_ids)
        self.j_image.mark_columns(np.flatnonzero(np.isin(order, fit.plastic)) if partial else None)

    def select_worst(self) -> None:
        """Select the N_WORST ROIs with the lowest free-run pVar in the shared ROI selection."""
        fit, sel = self.fit, self._selection
        if fit is None or sel is None:
            return
        index = {r: i for i, r in enumerate(sel.recording.roi_ids.tolist())}
        worst = np.argsort(np.nan_to_num(fit.pvar_per_neuron, nan=np.inf))[:N_WORST]
        sel.set([index[r] for r in fit.roi_ids[worst].tolist() if r in index])

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export circuit fit", "circuit.h5", "HDF5 (*.h5);;CSV tables (*.csv)")
        if path:
            self.export(path)

    def export(self, path: str | Path) -> list[Path]:
        """Write the shown fit: .h5/.hdf5 (the whole fit) or .csv (per-ROI table and current table)."""
        if self.fit is None:
            return []
        path = Path(path)
        try:
            written = self.fit.export_csv(path) if path.suffix.lower() == ".csv" else [self.fit.save(path)]
        except (OSError, PocoError) as exc:
            self.status.setText(f"Export failed: {exc}")
            return []
        self.status.setText("Exported " + ", ".join(str(p) for p in written))
        return written

    def _draw_currents(self) -> None:
        if self.fit is None:
            return
        self.ensemble_label.setText("")
        targets, sources, m = self.fit.current_matrix("rms", kind=self.kind.currentText())
        self.current_matrix.set_matrix(m, [(t, i, i + 1) for i, t in enumerate(targets)],
                                       [(s, i, i + 1) for i, s in enumerate(sources)], diverging=False)
        self.current_grid.set_currents(targets, sources, self.fit.currents(self.kind.currentText()), self.fit.params["dt_data"])
        self._draw_target()

    def _draw_target(self) -> None:
        fit, target = self.fit, self.target.currentText()
        if fit is None or not target:
            return
        cur = fit.currents(self.kind.currentText())
        sources = fit.region_names + ([EXTERNAL] if self.kind.currentText() == "all" else [])
        t = np.arange(fit.data.shape[0]) * fit.params["dt_data"]
        self.region_currents.set_currents(target, {s: cur[(s, target)] for s in sources}, t)

    def _link_selection(self, rec: Any) -> None:
        """Follow the recording's shared ROI selection (ROIs matched by id)."""
        if self._selection is not None:
            self._selection.changed.disconnect(self._draw_rois)
        self._selection = selection_for(rec)
        self._selection.changed.connect(self._draw_rois)
        self._draw_rois()

    def _draw_rois(self, *_: Any) -> None:
        fit, sel = self.fit, self._selection
        if fit is None or sel is None:
            return
        column = {r: i for i, r in enumerate(fit.roi_ids.tolist())}
        ids = [str(sel.recording.roi_ids[i]) for i in sel.indices]
        cols = [column[r] for r in ids if r in column]
        t = np.arange(fit.data.shape[0]) * fit.params["dt_data"]
        self.roi_fit.set_rois(t, fit.data[:, cols], fit.rates[:, cols], [fit.roi_ids[c] for c in cols],
                              fit.pvar_per_neuron[cols])
