"""Live panel: follow a recording as it is acquired, with rolling forecasts and online adaptation.

The source is a growing .h5 file, a folder of .npy chunks, or raw TIFF frames (a multi-page TIFF
or a folder of them) plus a segmentation: then the worker thread also registers each frame and
extracts its ROI traces (``poco_core.live.extract``, the engine of ``poco extract``), and the panel
shows the current frame's shift and the extraction rate.
A worker thread runs ``LiveSession.run`` (poll the source, preprocess, forecast) and hands each
update to the GUI thread through a queued Qt signal; the GUI only stores it and redraws once per
event-loop turn, so a slow frame never blocks polling and a burst of frames costs one repaint.
Top plot: the selected units' recent frames, the latest forecast drawn ahead of "now" and the
forecast made P frames ago drawn over the frames that have since arrived. Bottom: a raster of all
units (every k-th when there are many) over the same window.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
from qtpy.QtCore import QObject, QTimer, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from poco_core.base.errors import PocoError
from poco_core.live import (
    Forecast,
    LiveSession,
    LiveUpdate,
    OnlineAdapter,
    OnlineConfig,
    open_source,
)
from poco_core.live.extract import ExtractionSource, extracted_path, is_tiff_source
from poco_core.live.frames import parse_plane
from poco_core.models.inference import PRECISIONS
from poco_napari.colors import layer_roi_colors
from poco_napari.forms import scroll_layout
from poco_napari.live_plots import (
    FRAME_DRAW_HZ,
    MAX_TRACES,
    MAX_WINDOW_FRAMES,
    MIN_VIEW_S,
    OFFSET,
    RASTER_ROWS,
    VIEW_WINDOWS,
    WINDOW_S,
    DisplayBuffer,
    LivePlots,
    anchor,
    draw_forecast,
)
from poco_napari.plot_base import unit_colors
from poco_napari.selection import RoiSelection, selection_for
from poco_napari.store import active_recording, recordings_in, roi_layers


# While connected, three threads share the GIL: reading + extracting frames, forecasting, drawing.
# Handing it over every 0.5 ms instead of Python's 5 ms keeps a forecast's many short torch calls
# from queueing behind the others (benchmarks/bench_extract.py: frame written -> forecast drawn p99
# 108 -> 93 ms at 1,000 ROIs, 30 Hz; docs/performance.md).
LIVE_SWITCH_INTERVAL_S = 0.0005


class _Relay(QObject):
    """Carries worker-thread results into the GUI thread (queued signal connections)."""

    update = Signal(object)
    failed = Signal(str)
    adapt_event = Signal(object)


class LiveWidget(QWidget):
    """Dock widget; ``napari_viewer`` is injected by napari (unused outside napari)."""

    updated = Signal(object)  # each LiveUpdate as it reaches the GUI thread (for other docks, benchmarks)
    drawn = Signal(int, int)  # after each redraw: the newest frame on screen, and the frame of the newest forecast (-1: none)

    def __init__(self, napari_viewer=None):
        super().__init__()
        self.viewer = napari_viewer
        self.session: LiveSession | None = None
        self.adapter: OnlineAdapter | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._buffer: DisplayBuffer | None = None
        self._raster_label = ""
        self._raster_rows = 0  # rows of the raster the y range was set for
        self._switch_interval: float | None = None  # the interpreter's, while connected (see LIVE_SWITCH_INTERVAL_S)
        self._drawn_at = 0.0  # time.monotonic() of the last redraw
        self._forecasts: dict[int, Forecast] = {}
        self._pending: list[LiveUpdate] = []
        self.last_update: LiveUpdate | None = None
        self._linked: RoiSelection | None = None  # the viewer's selection the plotted units follow
        self._color_events = None  # the linked ROI layer's colour event, while connected
        self._relay = _Relay()
        self._relay.update.connect(self._on_update)
        self._relay.failed.connect(self._on_failed)
        self._relay.adapt_event.connect(self._on_adapt_event)
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(0)
        self._redraw_timer.timeout.connect(self._redraw)
        self._build_ui()
        if napari_viewer is not None:
            napari_viewer.events.theme.connect(lambda e: self.plots.apply_theme(napari_viewer.theme))
            self.plots.apply_theme(napari_viewer.theme)

    # -- layout ------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.source_edit = QLineEdit(placeholderText="growing .h5 file, folder of .npy chunks, or TIFF frames (file or folder)")
        self.rois_edit = QLineEdit(placeholderText="segmentation for TIFF frames: suite2p folder, NWB, CaImAn or .h5")
        self.rois_edit.setToolTip("raw TIFF frames are registered to this segmentation's reference image and its ROI "
                                  "traces extracted (F, neuropil beside it), written to <frames>_extracted.h5")
        rois_file_btn, rois_folder_btn = QPushButton("File…"), QPushButton("Folder…")
        rois_file_btn.clicked.connect(lambda: self._choose_rois(folder=False))
        rois_folder_btn.clicked.connect(lambda: self._choose_rois(folder=True))
        file_btn, folder_btn = QPushButton("File…"), QPushButton("Folder…")
        file_btn.clicked.connect(lambda: self._choose(folder=False))
        folder_btn.clicked.connect(lambda: self._choose(folder=True))
        self.channel_spin = QSpinBox(minimum=0, maximum=15, value=0)
        self.channel_spin.setToolTip("TIFF frames: the channel to extract (0-based), when pages interleave channels")
        self.plane_box = QComboBox(editable=True)
        self.plane_box.addItems([*(str(i) for i in range(8)), "all"])
        self.plane_box.setToolTip("TIFF frames: the plane to extract (0-based), or 'all': every plane with its own "
                                  "segmentation (a suite2p folder with plane0, plane1, ...) as one recording")
        self.planes_spin = QSpinBox(minimum=0, maximum=64, value=0, specialValueText="auto")
        self.planes_spin.setToolTip("TIFF frames: planes per volume (auto: ScanImage metadata, else 1)")
        self.fs_spin = QDoubleSpinBox(minimum=0.01, maximum=10000.0, value=5.0, suffix=" Hz", decimals=2)
        self.fs_spin.setToolTip("chunk rate: the sampling rate of a folder of .npy chunks (an .h5 file and TIFF "
                                "metadata store their own)")
        self.checkpoint_edit = QLineEdit(placeholderText="pretrained checkpoint (.pt), optional")
        ckpt_btn = QPushButton("Checkpoint…")
        ckpt_btn.clicked.connect(self._choose_checkpoint)
        self.zscore_box = QComboBox()
        self.zscore_box.addItems(["running", "frozen"])
        self.filter_box = QComboBox()
        self.filter_box.addItems(["none", "causal_lowpass"])
        self.calibration_spin = QSpinBox(minimum=0, maximum=100000, value=0, suffix=" frames")
        self.calibration_spin.setToolTip("calibration: the first frames, whose statistics are frozen (z-score 'frozen')")
        self.precision_box = QComboBox()
        self.precision_box.addItems(list(PRECISIONS))
        self.precision_box.setToolTip("forecast arithmetic: auto = bfloat16 where this CPU/GPU computes it natively "
                                      "(2-3x faster, forecasts within ~0.5% of fp32), else fp32")
        self.connect_btn = QPushButton("Connect")
        self.connect_btn.clicked.connect(self._toggle_connection)
        self.units_edit = QLineEdit("0, 1, 2")
        self.units_edit.setToolTip("unit indices to plot (ROIs, or PCs with PCA), comma separated")
        self.units_edit.editingFinished.connect(self._units_changed)
        self.adapt_btn = QPushButton("Adapt to this animal")
        self.adapt_btn.setEnabled(False)
        self.adapt_btn.clicked.connect(self._toggle_adaptation)
        self.status_label, self.preprocess_label = QLabel("not connected"), QLabel("")
        self.score_label, self.adapt_label = QLabel(""), QLabel("")
        for label in (self.status_label, self.preprocess_label, self.score_label, self.adapt_label):
            label.setWordWrap(True)
        self.plots = LivePlots(self)

        form = QFormLayout()
        form.addRow("source", _row(self.source_edit, file_btn, folder_btn))
        form.addRow("ROIs", _row(self.rois_edit, rois_file_btn, rois_folder_btn))
        form.addRow("TIFF stack", _row(QLabel("channel"), self.channel_spin, QLabel("plane"), self.plane_box))
        form.addRow("", _row(QLabel("planes per volume"), self.planes_spin))
        form.addRow("model", _row(self.checkpoint_edit, ckpt_btn))
        form.addRow("preprocessing", _row(QLabel("z-score"), self.zscore_box, QLabel("calibration"), self.calibration_spin))
        form.addRow("", _row(QLabel("filter"), self.filter_box, QLabel("precision"), self.precision_box))
        form.addRow("", _row(QLabel("chunk rate"), self.fs_spin, self.connect_btn))
        form.addRow("plot units", _row(self.units_edit, self.adapt_btn))
        self.link_label = QLabel("")
        self.link_label.setWordWrap(True)
        form.addRow("", self.link_label)
        self.extract_label = QLabel("")
        self.extract_label.setWordWrap(True)
        layout = scroll_layout(self)
        layout.addLayout(form)
        for label in (self.status_label, self.extract_label, self.preprocess_label, self.score_label, self.adapt_label):
            layout.addWidget(label)
        layout.addWidget(self.plots, stretch=1)

    def _choose(self, folder: bool) -> None:
        path = (QFileDialog.getExistingDirectory(self, "Chunk folder") if folder
                else QFileDialog.getOpenFileName(self, "Growing recording", "", "Recordings (*.h5 *.hdf5 *.tif *.tiff)")[0])
        if path:
            self.source_edit.setText(path)

    def _choose_rois(self, folder: bool) -> None:
        path = (QFileDialog.getExistingDirectory(self, "suite2p folder") if folder
                else QFileDialog.getOpenFileName(self, "Segmentation", "", "Recordings (*.h5 *.hdf5 *.nwb *.mat)")[0])
        if path:
            self.rois_edit.setText(path)

    def _choose_checkpoint(self) -> None:
        path = QFileDialog.getOpenFileName(self, "Pretrained checkpoint", "", "Checkpoints (*.pt)")[0]
        if path:
            self.checkpoint_edit.setText(path)

    # -- connection --------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _toggle_connection(self) -> None:
        if self.connected:
            self.disconnect_source()
        else:
            try:
                self.connect_source()
            except PocoError as exc:
                self.status_label.setText(f"cannot connect: {exc}")

    def stack_options(self) -> dict:
        """How TIFF pages interleave and which to extract (``TiffFrames`` options, as ``poco extract``'s)."""
        return {"channel": self.channel_spin.value(), "plane": parse_plane(self.plane_box.currentText()),
                "n_planes": self.planes_spin.value() or None}

    def config(self) -> OnlineConfig:
        return OnlineConfig(zscore=self.zscore_box.currentText(), filter=self.filter_box.currentText(),
                            calibration=self.calibration_spin.value())

    def connect_source(self, source=None, model=None) -> None:
        """Start following ``source`` (default: the path in the panel) with ``model`` (default: the checkpoint)."""
        from poco_core.base.allocator import keep_freed_memory
        from poco_core.training.restore import load_model

        keep_freed_memory()  # a forecast per frame would otherwise page-fault its buffers in again (~10%)
        if source is None:
            path = self.source_edit.text().strip()
            if not path:
                raise PocoError("choose a growing .h5 file, a chunk folder or TIFF frames first")
            rois = self.rois_edit.text().strip()
            if rois and (Path(path).is_dir() or is_tiff_source(path)):
                source = ExtractionSource(path, rois, out=extracted_path(path), follow=True, **self.stack_options())
            elif is_tiff_source(path):
                raise PocoError("TIFF frames need a segmentation (ROIs) to extract traces with")
            else:
                source = open_source(path, fs=self.fs_spin.value() if Path(path).is_dir() else None)
        ckpt = self.checkpoint_edit.text().strip()
        if model is None and ckpt:
            model = load_model(ckpt)
        else:
            self.source_edit.setText(str(getattr(source, "path", getattr(source, "folder", "")))
                                     or f"in-process {type(source).__name__}")
        self.session = LiveSession(source, model, self.config(), precision=self.precision_box.currentText())
        self._buffer, self._forecasts, self.last_update = None, {}, None
        self._stop.clear()
        if self._switch_interval is None:  # restored on disconnect
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(LIVE_SWITCH_INTERVAL_S)
        self._thread = threading.Thread(target=self._work, name="poco-live", daemon=True)
        self._thread.start()
        self.connect_btn.setText("Disconnect")
        self.status_label.setText("connected; waiting for frames" + ("" if model else " (no checkpoint: traces only)"))

    def _work(self) -> None:
        try:
            self.session.run(self._relay.update.emit, self._stop)
        except Exception as exc:  # noqa: BLE001  shown in the panel instead of dying silently in a thread
            self._relay.failed.emit(str(exc) if isinstance(exc, PocoError) else f"{type(exc).__name__}: {exc}")

    def disconnect_source(self, message: str = "disconnected") -> None:
        self._unlink_selection()
        if self.adapter is not None:
            self.adapter.stop(timeout=5)
            self.adapter = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join()  # at most one poll + forecast: the worker checks the flag every poll
        if self.session is not None:
            self.session.source.close()
        self._thread = None
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None
        self.connect_btn.setText("Connect")
        self.adapt_btn.setText("Adapt to this animal")
        self.adapt_btn.setEnabled(False)
        self.status_label.setText(message)

    def _on_failed(self, message: str) -> None:
        self.disconnect_source(f"stopped: {message}")

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt)
        self.disconnect_source()
        super().closeEvent(event)

    # -- frames in ---------------------------------------------------------------------
    def selected_units(self) -> list[int]:
        n = 0 if self._buffer is None else self._buffer.n_units
        try:
            picked = [int(p) for p in self.units_edit.text().replace(";", ",").split(",") if p.strip()]
        except ValueError:
            picked = []
        return [i for i in dict.fromkeys(picked) if 0 <= i < n][:MAX_TRACES] or list(range(min(n, 3)))

    def _units_changed(self) -> None:
        if self._linked is not None:  # typed units become the viewer's selection (which calls back here)
            self._linked.set(self.selected_units())
        if self._buffer is not None:
            self._set_plot_units()
            self._redraw()

    # -- the viewer's ROI selection ------------------------------------------------------
    def _link_selection(self) -> None:
        """Plot the ROIs selected in the viewer (click, shift-click, Up/Down) when the viewer shows
        a recording with this stream's ROIs: the same ids and, where the source names its session
        (a project HDF5 file), the same session. Units that are PCs cannot be linked."""
        self._unlink_selection()
        ids = [str(i) for i in self.session.source.roi_ids]
        if self.viewer is None or self.session.preprocessor.unit_ids:  # no viewer, or units are PCs
            return
        session = getattr(self.session.source, "session", None)
        recs = [r for r in recordings_in(self.viewer)
                if [str(i) for i in r.roi_ids] == ids and session in (None, r.session)]
        if not recs:
            self.link_label.setText("open this animal's recording in the viewer to pick units by clicking its ROIs")
            return
        active = active_recording(self.viewer)
        rec = next((r for r in recs if r is active), recs[0])
        self._linked = selection_for(rec)
        self._linked.changed.connect(self._follow_selection)
        self.link_label.setText(f"plotted units follow the ROI selection of {rec.session!r} in the viewer")
        if self._linked.indices:
            self._follow_selection(self._linked.indices)
        else:
            self._linked.set(self.selected_units())

    def _unlink_selection(self) -> None:
        if self._color_events is not None:
            self._color_events.disconnect(self._recolor)
            self._color_events = None
        if self._linked is not None:
            self._linked.changed.disconnect(self._follow_selection)
            self._linked = None
            self.link_label.setText("")

    def _roi_layer(self):
        layers = roi_layers(self.viewer, self._linked.recording) if self._linked is not None else []
        return layers[0] if layers else None

    def _set_plot_units(self) -> None:
        """Curves for the plotted units, coloured like their ROIs in the viewer when linked."""
        units, layer = self.selected_units(), self._roi_layer()
        if layer is None:
            self.plots.set_units(unit_colors(len(units))[:len(units)])
            return
        if self._color_events is None:  # repaint when the ROIs are recoloured (e.g. by UMAP cluster)
            events = layer.events
            self._color_events = events.colormap if "colormap" in events.emitters else events.face_color
            self._color_events.connect(self._recolor)
        self.plots.set_units([tuple(int(255 * c) for c in rgba[:3]) for rgba in layer_roi_colors(layer, units)])

    def _recolor(self, *_) -> None:
        if self._buffer is not None:
            self._set_plot_units()
            self._redraw_timer.start()

    def _follow_selection(self, indices: tuple[int, ...]) -> None:
        self.units_edit.setText(", ".join(str(i) for i in indices[:MAX_TRACES]))
        if self._buffer is not None:
            self._set_plot_units()
            self._redraw_timer.start()  # redraw on the next event-loop turn (this may run inside one)

    def _on_update(self, update: LiveUpdate) -> None:
        """Queue the update and schedule a redraw: at once for a forecast (what the user waits for),
        at most FRAME_DRAW_HZ times a second for frames alone while a model forecasts (each redraw
        costs the CPU that forecasting needs; the next forecast draws the frames anyway)."""
        self._pending.append(update)
        self.updated.emit(update)
        wait_ms = 0
        if not update.forecasts and self.session is not None and self.session.forecaster is not None:
            wait_ms = max(0, int((self._drawn_at + 1.0 / FRAME_DRAW_HZ - time.monotonic()) * 1000))
        if not self._redraw_timer.isActive() or wait_ms < self._redraw_timer.remainingTime():
            self._redraw_timer.start(wait_ms)

    def _absorb(self) -> None:
        for update in self._pending:
            if len(update.units):
                if self._buffer is None:
                    fs = self.session.fs  # model frames (binned when the model bins)
                    self._buffer = DisplayBuffer(update.units.shape[1], int(min(WINDOW_S * fs, MAX_WINDOW_FRAMES)))
                    self._link_selection()
                    self._set_plot_units()
                    self.adapt_btn.setEnabled(self.session.forecaster is not None)
                    if self.session.forecaster is not None and not self.session.known_session:
                        self.adapt_label.setText("new animal for this model: its embeddings start fresh; "
                                                 "'Adapt to this animal' learns them from the frames so far")
                self._buffer.extend(update.units, update.units_end)
            for f in update.forecasts:
                self._forecasts[f.t] = f
            self.last_update = update
        self._pending = []
        if self._buffer is not None and self.session.forecaster is not None:
            oldest = self._buffer.end - 1 - 3 * self.session.forecaster.horizon
            newest = max(self._forecasts, default=-1)
            self._forecasts = {t: f for t, f in self._forecasts.items() if t >= oldest or t == newest}

    def _shown_forecasts(self, now: int, horizon: int) -> tuple[Forecast | None, Forecast | None]:
        """The newest forecast (made at now, or earlier when forecasting lags behind the frames),
        and the newest one made at least P frames ago, which the frames since then can be compared with."""
        ts = sorted(self._forecasts)
        past = [t for t in ts if t <= now - horizon]
        return (self._forecasts[ts[-1]] if ts else None), (self._forecasts[past[-1]] if past else None)

    # -- drawing -----------------------------------------------------------------------
    def _redraw(self) -> None:
        self._absorb()
        if self._buffer is None or self.last_update is None:
            return
        self._drawn_at = time.monotonic()
        fs = self.session.fs  # model frames (binned when the model bins)
        mean, sd = self.last_update.mean, self.last_update.sd
        now = self._buffer.end - 1
        fc = self.session.forecaster
        horizon = fc.horizon if fc else 0
        right = (now + 1 + horizon) / fs  # the view ends where the latest forecast does
        span = max(VIEW_WINDOWS * (fc.context + horizon) / fs if fc else 0.0, MIN_VIEW_S)
        # only frames in view are read and drawn, and none before the first one
        n_shown = min(self._buffer.capacity, int(np.ceil(span * fs)) + 1, self._buffer.end)
        frames = self._buffer.frames(n_shown)
        t0, t_axis = int(frames[0]), frames / fs
        left = max(t_axis[0], right - span)
        units = self.selected_units()
        z = (self._buffer.recent(n_shown, units) - mean[units]) / sd[units]
        latest, past = self._shown_forecasts(now, horizon)
        ids = self._unit_names()
        for row, (i, (actual, ahead, old, label)) in enumerate(zip(units, self.plots.curves)):
            off = -OFFSET * row
            actual.setData(t_axis, z[:, row] + off, connect="finite")
            draw_forecast(ahead, latest, i, mean, sd, off, fs, anchor(z, latest, t0, row))
            draw_forecast(old, past, i, mean, sd, off, fs, anchor(z, past, t0, row))
            label.setText(str(ids[i]))
            label.setPos(left, off + OFFSET / 2)
        self.plots.now_line.setPos(now / fs)
        self.plots.traces.setXRange(left, right, padding=0)
        self._draw_raster(n_shown, t_axis, mean, sd)
        self._update_labels()
        self.drawn.emit(int(now), -1 if latest is None else latest.t)  # the newest frame on screen

    def _unit_names(self) -> list[str] | np.ndarray:
        """PC names with PCA, else the source's ROI ids (not converted per redraw: 10,000 of them cost ms)."""
        pre = self.session.preprocessor
        return pre.unit_ids or self.session.source.roi_ids

    def _draw_raster(self, n_shown: int, t_axis: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> None:
        n = self._buffer.n_units
        step = max(1, int(np.ceil(n / RASTER_ROWS)))
        cols = slice(None, None, step)
        rows = self._buffer.recent(n_shown, cols)
        rows -= mean[cols]
        rows /= sd[cols]
        rows[np.isnan(rows)] = 0.0  # frames before the first one
        self.plots.raster.setImage(rows.T, levels=(-3, 3), autoLevels=False)
        dt = t_axis[1] - t_axis[0] if len(t_axis) > 1 else 1.0
        self.plots.raster.setRect(t_axis[0], 0, len(t_axis) * dt, rows.shape[1])
        if rows.shape[1] != self._raster_rows:
            self._raster_rows = rows.shape[1]
            self.plots.raster_plot.setYRange(0, rows.shape[1], padding=0)
        label = "units" if step == 1 else f"units (every {step}th of {n})"
        if label != self._raster_label:
            self._raster_label = label
            self.plots.raster_plot.setLabel("left", label)

    def _update_labels(self) -> None:
        session, update = self.session, self.last_update
        latency = (time.monotonic() - update.ready_at) * 1000
        text = f"{session.status()} · frame {update.last} · drawn {latency:.0f} ms after it was read"
        skipped = session.forecaster.skipped if session.forecaster else 0
        if skipped:
            text += f" · {skipped} frames left without a forecast (CPU too busy to forecast every frame)"
        self.status_label.setText(text)
        src = session.source
        if isinstance(src, ExtractionSource) and src.last_shift is not None:
            dy, dx = src.last_shift
            notes = "".join(f" · {n}" for n in src.notes)
            self.extract_label.setText(f"frame shift dy {dy:+.2f} dx {dx:+.2f} px · extraction capacity {src.rate_hz:.0f} frames/s "
                                       f"· traces written to {src.out.name}{notes}")
        warnings = "".join(f" · warning: {n}" for n in session.notes)
        self.preprocess_label.setText(f"preprocessing in force: {session.describe()}{warnings}")
        if session.forecaster is None:
            self.score_label.setText("no model: load a checkpoint to forecast")
            return
        fc = session.forecaster
        s = update.score
        text = ("score vs copy: waiting for the first forecast to come true" if s is None else
                f"running score vs copy (last {s.window_s / 60:.0f} min, {s.n_forecasts} forecasts): {s.score:+.3f}")
        if fc.model_version:
            current = fc.score(since_version=fc.model_version)
            if current is not None:
                text += f" · adapted model v{fc.model_version}: {current.score:+.3f}"
        self.score_label.setText(text)

    # -- adaptation --------------------------------------------------------------------
    def _toggle_adaptation(self) -> None:
        if self.adapter is not None and self.adapter.running:
            self.adapter.stop(timeout=0)
            self.adapt_btn.setText("Adapt to this animal")
            self.adapt_label.setText("adaptation stopped; forecasts keep the last adapted model")
            return
        try:
            self.adapter = OnlineAdapter(self.session, on_event=self._relay.adapt_event.emit).start()
        except PocoError as exc:
            self.adapt_label.setText(str(exc))
            return
        self.adapt_btn.setText("Stop adapting")
        self.adapt_label.setText(f"adapting: waiting for {self.adapter.min_frames} frames")

    def _on_adapt_event(self, event: dict) -> None:
        kind, rounds = event["type"], self.adapter.rounds if self.adapter else 0
        if kind == "step":
            self.adapt_label.setText(f"adapting (round {rounds + 1}): step {event['step']}, loss {event['loss']:.3f}")
        elif kind == "swapped":
            self.adapt_label.setText(f"adapted embeddings swapped in (round {event['round']}, {event['frames']} frames); "
                                     "re-running as frames accumulate")
        elif kind == "error":
            self.adapt_label.setText(f"adaptation failed: {event['message']}")


def _row(*widgets: QWidget) -> QWidget:
    holder = QWidget()
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        layout.addWidget(w)
    return holder
