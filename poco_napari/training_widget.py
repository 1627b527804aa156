"""Training dock: pick open sessions, a model and settings; Start runs it as a background job.

`JobLauncher` holds what the finetuning dock shares: the optimisation settings, where the
checkpoint goes, the Start/Cancel button, the job table and the plot docks. The job itself
runs in a child process (see ``poco_napari.jobs``), so napari stays responsive.
"""
from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

import platformdirs
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)
from superqt import QCollapsible

from poco_core.base.device import available_devices
from poco_core.base.errors import PocoError
from poco_core.data.recording import Recording
from poco_core.models import available_models
from poco_napari.calm_settings import CalMSettings
from poco_napari.forms import FramesField, collapsible, scroll_layout, set_tooltips
from poco_napari.job_docks import docks_for
from poco_napari.jobs import Job, JobQueue, job_queue, make_job
from poco_napari.plot_base import Throttle
from poco_napari.selection import selection_for
from poco_napari.store import follow_while_alive, preprocessed, recordings_in

NICE = 5  # niceness of a low-priority job (POSIX)


def runs_dir() -> Path:
    """Default folder for checkpoints trained in the GUI."""
    return Path(platformdirs.user_data_dir("poco-studio")) / "runs"


def parse_overrides(text: str) -> dict[str, Any]:
    """``"hidden=64, d_model=32"`` -> {"hidden": 64, "d_model": 32}; values are Python literals."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip().isidentifier():
            raise PocoError(f"model option {part!r}: write name=value, e.g. hidden=64")
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError) as exc:
            raise PocoError(f"model option {part!r}: {value.strip()!r} is not a number or literal") from exc
    return out


def job_defaults(kind: str) -> dict[str, Any]:
    """steps, lr, batch_size, val_every of a training or finetuning run: the engine's own
    defaults (``poco_core.training.defaults``, else the loop's), so the GUI, the CLI and the
    Python API start from the same settings."""
    from poco_core.training import defaults
    from poco_core.training.loop import LoopOptions

    base = {k: getattr(LoopOptions, k) for k in ("steps", "lr", "batch_size", "val_every")}
    return {**base, **getattr(defaults, "TRAIN_DEFAULTS" if kind == "train" else "FINETUNE_DEFAULTS", {})}


def selected_rois(recordings: list[Recording]) -> dict[str, list[str]]:
    """Session -> ids of its selected ROIs, for the job's forecast-vs-actual samples."""
    out = {}
    for rec in recordings:
        picked = selection_for(rec).indices
        if picked:
            out[rec.session] = [str(rec.roi_ids[i]) for i in picked]
    return out


def step_text(job: Job) -> str:
    """"step/total", the one wording of a job's progress (job table and status line)."""
    return f"{job.step}/{job.total_steps if job.total_steps is not None else 'auto'}"


def job_timing(job: Job) -> tuple[float | None, float | None]:
    """(elapsed, remaining) seconds of a job: the engine's figures when its step events carry
    them, else measured here (remaining = time per step so far x steps left)."""
    elapsed, eta = job.elapsed_s, job.eta_s
    if elapsed is None and job.started_at is not None and job.step > 0:
        elapsed = time.monotonic() - job.started_at
    if eta is None and elapsed is not None and job.step > 0 and job.total_steps is not None:
        eta = elapsed / job.step * max(job.total_steps - job.step, 0)
    if job.status.final:
        eta = None
    return elapsed, eta


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def job_notes(job: Job) -> str:
    """The start event's warnings and what preprocessing did, one line each."""
    lines = [f"warning: {w}" for w in job.warnings]
    lines += [f"{session}: {'; '.join(sentences)}" for session, sentences in job.preprocess_report.items() if sentences]
    return "\n".join(lines)


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return "" if value is None else format(value, spec)


class JobTable(QTableWidget):
    """Every job of the queue: status, step, loss, best validation score (message as tooltip)."""

    COLUMNS = ("job", "status", "step", "elapsed", "ETA", "loss", "best val score")
    refreshed = Signal()

    def __init__(self, queue: JobQueue, parent: QWidget | None = None):
        super().__init__(0, len(self.COLUMNS), parent)
        self.queue = queue
        self.setHorizontalHeaderLabels(self.COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QTableWidget.NoEditTriggers)
        self.horizontalHeader().setStretchLastSection(True)
        self.setMaximumHeight(140)
        self._throttle = Throttle(self.refresh, parent=self)
        # bound methods of this QObject: Qt drops the connections when the table is deleted
        queue.added.connect(self.refresh)
        queue.finished.connect(self.refresh)
        queue.changed.connect(self._mark)
        self.refresh()

    def _mark(self) -> None:
        self._throttle.mark()

    def refresh(self, *_: Any) -> None:
        self.setRowCount(len(self.queue.jobs))
        for row, job in enumerate(self.queue.jobs):
            elapsed, eta = job_timing(job)
            cells = (job.name, job.status.value, step_text(job), _duration(elapsed), _duration(eta),
                     _fmt(job.loss), _fmt(job.best_score, ".3f"))
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(job.message)
                self.setItem(row, col, item)
        self.resizeColumnsToContents()
        self.refreshed.emit()


class JobLauncher(QWidget):
    """Base of the training and finetuning docks. Subclasses add their own settings groups
    (``_groups``) and say what to run (``_job_inputs``); this class does the rest."""

    kind = "train"
    job_started = Signal(object)
    job_finished = Signal(object)

    def __init__(self, napari_viewer: Any):
        super().__init__()
        defaults = job_defaults(self.kind)
        self.viewer = napari_viewer
        self.queue = job_queue()
        self.job: Job | None = None
        # 0 shows "auto": the engine picks the budget (5,000 steps for one session, 10,000 for several)
        self.steps = QSpinBox(minimum=0, maximum=10_000_000, value=int(defaults["steps"] or 0), singleStep=100,
                              specialValueText="auto (5,000 / 10,000 for several sessions)")
        self.batch_size = QSpinBox(minimum=1, maximum=65_536, value=int(defaults["batch_size"]))
        self.lr = QDoubleSpinBox(decimals=6, minimum=1e-6, maximum=1.0, singleStep=1e-4, value=float(defaults["lr"]))
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.device = QComboBox()
        self.device.addItems(available_devices())
        self.val_every = QSpinBox(minimum=0, maximum=1_000_000, value=int(defaults["val_every"] or 0), suffix=" steps",
                                  specialValueText="auto (4 per epoch, at most 100 steps apart)")
        self.threads = QSpinBox(minimum=0, maximum=256, value=0, specialValueText="all cores but one")
        set_tooltips(
            (self.steps, "Optimisation steps (one batch each); the best validation checkpoint is kept"),
            (self.batch_size, "Windows per optimisation step"),
            (self.lr, "AdamW learning rate"),
            (self.seed, "Random seed: the same seed and data give the same run"),
            (self.device, "Where the job runs: auto = CUDA GPU, else Apple MPS, else CPU"),
            (self.val_every, "Score the validation split every this many steps (the curves and best checkpoint follow it)"),
            (self.threads, "Torch CPU threads for the job; by default all cores but one, left to napari"),
        )
        self.low_priority = QCheckBox("run below napari's priority")
        self.low_priority.setToolTip("The job yields the CPU to napari when both are busy (keeps the GUI smooth)")
        self.low_priority.setChecked(True)
        self.checkpoint = QLineEdit()
        self.checkpoint.setPlaceholderText(f"automatic, in {runs_dir()}")
        self.checkpoint.setToolTip("Where the trained model (best validation checkpoint) is written")
        browse = QPushButton("...")
        browse.setMaximumWidth(30)
        browse.clicked.connect(self._browse_output)
        out_row = QWidget()
        out_layout = QHBoxLayout(out_row)
        out_layout.setContentsMargins(0, 0, 0, 0)
        out_layout.addWidget(self.checkpoint)
        out_layout.addWidget(browse)

        self.button = QPushButton("Start")
        self.queue_button = QPushButton("Queue another")
        self.queue_button.setToolTip("Add a job with these settings; it starts when the CPU/GPU is free")
        self.queue_button.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.table = JobTable(self.queue)
        self.table.refreshed.connect(self._update)  # the status line shows what the table shows, when it does
        self.button.clicked.connect(self._on_button)
        self.queue_button.clicked.connect(self.start)

        layout = scroll_layout(self)
        for group in self._groups():
            layout.addWidget(group)
        layout.addWidget(collapsible("Optimisation", [
            ("steps", self.steps), ("batch size", self.batch_size), ("learning rate", self.lr),
            ("validate every", self.val_every), ("seed", self.seed), ("device", self.device),
            ("CPU threads", self.threads), ("", self.low_priority)], expanded=False))
        layout.addWidget(collapsible("Output", [("checkpoint", out_row)], expanded=False))
        buttons = QHBoxLayout()
        buttons.addWidget(self.button)
        buttons.addWidget(self.queue_button)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.table)
        layout.addStretch(1)

    # -- for subclasses -------------------------------------------------------------------
    def _groups(self) -> list[QCollapsible]:
        raise NotImplementedError

    def _job_inputs(self) -> tuple[list[Recording], dict[str, Any]]:
        """The recordings to hand to the job and its JobSpec fields besides the common ones (with a name)."""
        raise NotImplementedError

    def _on_done(self, job: Job) -> None:
        """After a run that produced a checkpoint: show its forecasts."""

    # -- running ------------------------------------------------------------------------
    def start(self) -> Job | None:
        """Queue a job with the current settings; problems are reported in the status line."""
        try:
            recordings, fields = self._job_inputs()
            job = make_job(self.kind, recordings, checkpoint=self._output_path(fields["name"]),
                           steps=self.steps.value() or None, batch_size=self.batch_size.value(), lr=self.lr.value(),
                           seed=self.seed.value(), device=self.device.currentText(),
                           val_every=self.val_every.value() or None, threads=self.threads.value(),
                           nice=NICE if self.low_priority.isChecked() else 0,
                           sample_rois=selected_rois(recordings), **fields)
        except (PocoError, OSError, ValueError) as exc:
            self.status.setText(f"Cannot start: {exc}")
            return None
        self.job = job
        docks = docks_for(self.viewer)
        job.finished.connect(lambda: self._finished(job))
        docks.follow(job, {rec.session: float(rec.fs) for rec in recordings})
        self.queue.submit(job)
        self._update()
        self.job_started.emit(job)
        return job

    def _output_path(self, name: str) -> str:
        text = self.checkpoint.text().strip()
        if text:
            return text
        runs_dir().mkdir(parents=True, exist_ok=True)
        stem = "-".join(name.split())
        return str(runs_dir() / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{len(self.queue.jobs)}.pt")

    def _browse_output(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the checkpoint as", str(runs_dir()), "Checkpoints (*.pt)")
        if path:
            self.checkpoint.setText(path)

    def _on_button(self) -> None:
        if self.job is not None and not self.job.status.final:
            self.job.cancel()
        else:
            self.start()

    def _update(self) -> None:
        job = self.job
        if job is None:
            return
        active = not job.status.final
        self.button.setText("Cancel" if active else "Start")
        self.queue_button.setVisible(active)
        self.status.setText(self._describe(job))

    def _describe(self, job: Job) -> str:
        notes = job_notes(job)
        notes = f"\n{notes}" if notes else ""
        if job.status.final:
            return f"{job.name}: {job.message}{notes}"
        best = "" if job.best_score is None else f", best validation score {job.best_score:.3f} (copy baseline 0)"
        elapsed, eta = job_timing(job)
        timing = "" if elapsed is None else f", {_duration(elapsed)} elapsed" + ("" if eta is None else f", about {_duration(eta)} left")
        return f"{job.name}: {job.status.value}, step {step_text(job)}{timing}{best}{notes}"

    def _finished(self, job: Job) -> None:
        if job is self.job:
            self._update()
        if job.result is not None and job.checkpoint:
            self._on_done(job)
        self.job_finished.emit(job)

    def show_forecasts(self, checkpoint: str, recording: Recording) -> None:
        """Scrub the model's forecasts over `recording` in the forecast dock."""
        from poco_core.training.restore import load_model

        try:
            docks_for(self.viewer).show_model(load_model(checkpoint), recording)
        except PocoError as exc:
            self.status.setText(f"{self.status.text()}\nForecast view: {exc}")


class TrainingWidget(JobLauncher):
    """Dock widget; ``napari_viewer`` is injected by napari."""

    kind = "train"

    def __init__(self, napari_viewer: Any):
        super().__init__(napari_viewer)
        napari_viewer.layers.events.inserted.connect(self.refresh_sessions)
        napari_viewer.layers.events.removed.connect(self.refresh_sessions)
        follow_while_alive(preprocessed.changed, self.refresh_sessions, self)
        self.refresh_sessions()

    def _groups(self) -> list[QCollapsible]:
        self._recordings: list[Recording] = []
        self.sessions = QListWidget()
        self.sessions.setToolTip("Sessions to train on (the recordings open in the viewer)")
        self.sessions.setMaximumHeight(120)
        self.model = QComboBox()
        self.model.addItems(available_models())
        self.model.setCurrentText("poco")
        self.context = QSpinBox(minimum=1, maximum=100_000, value=48, suffix=" frames")
        self.horizon = QSpinBox(minimum=1, maximum=100_000, value=16, suffix=" frames")
        self.overrides = QLineEdit()
        self.overrides.setPlaceholderText("e.g. hidden=256, d_model=64")
        self.context_field, self.horizon_field = FramesField(self.context), FramesField(self.horizon)
        self.sessions.itemChanged.connect(lambda _: self._show_seconds())
        self.model.setToolTip("Forecasting model (POCO, or a baseline from the model registry)")
        self.context.setToolTip("Frames of history the model reads before each forecast (C)")
        self.horizon.setToolTip("Frames ahead the model forecasts (P); the score compares them with copying the last frame")
        self.overrides.setToolTip("Model options as name=value, comma separated (e.g. hidden=256, d_model=64)")
        from poco_core.training.defaults import CV_FOLDS, EMBEDDING_ANALYSIS, MLP_WARMUP, TRAIN_DEFAULTS

        self.mlp_warmup = QCheckBox("train the MLP alone first")
        self.mlp_warmup.setChecked(MLP_WARMUP)
        self.mlp_warmup.setToolTip("POCO's MLP trains alone until its validation stops improving, then everything; the "
                                   "population replaces the MLP only if clearly better (off: the paper's one stage)")
        self.embedding_lr = QDoubleSpinBox(decimals=1, minimum=0.1, maximum=100.0, singleStep=1.0, suffix=" × the lr",
                                           value=float(TRAIN_DEFAULTS["embedding_lr_scale"]))
        self.embedding_lr.setToolTip(
            "How much faster the unit and session embeddings learn than the rest of the model. For embeddings to "
            f"paint by (Embeddings dock): {EMBEDDING_ANALYSIS['embedding_lr_scale']:g} × the lr with the MLP warm-up "
            "unticked (on the Triplett fish they then group its assemblies; docs/results.md 7.3)")
        self.cv_folds = QComboBox()
        for k in (0, *range(2, 11)):
            self.cv_folds.addItem("off" if k == 0 else f"{k} folds ({2 * k} trainings)", k)
        self.cv_folds.setCurrentIndex(self.cv_folds.findData(CV_FOLDS))
        self.cv_folds.setToolTip(
            "Choose between POCO's MLP alone and POCO by cross-validation: both train on each of K folds of the "
            "train + val frames and the lower mean validation MSE is kept. On small data one validation split cannot "
            "tell them apart; this can, at 2K trainings' time (docs/results.md 7.2). Replaces the MLP warm-up.")
        self.cv_folds.currentIndexChanged.connect(lambda _: self.mlp_warmup.setEnabled(not self.cv_folds.currentData()))
        self.calm = CalMSettings()
        self.model.currentTextChanged.connect(lambda name: self.calm.setVisible(name == "calm"))
        self.calm.setVisible(False)
        return [
            collapsible("Sessions", [("", self.sessions)], expanded=True),
            collapsible("Model", [("model", self.model), ("context", self.context_field), ("horizon", self.horizon_field),
                                  ("model options", self.overrides), ("MLP warm-up", self.mlp_warmup),
                                  ("cross-validate", self.cv_folds), ("embedding lr", self.embedding_lr)], expanded=True),
            self.calm,
        ]

    def _show_seconds(self) -> None:
        """Context and horizon in seconds at the ticked sessions' rate (the first one's; warn on mixed rates)."""
        rates = sorted({float(r.fs) for r in self.checked_recordings()})
        fs = rates[0] if rates else None
        for field in (self.context_field, self.horizon_field):
            field.set_fs(fs)
        if len(rates) > 1:
            self.context_field.seconds.setText(self.context_field.seconds.text()
                                               + f" (sessions at {', '.join(f'{r:g}' for r in rates)} Hz)")

    def refresh_sessions(self, *_: Any) -> None:
        """List the open recordings, keeping ticks; new ones start ticked."""
        ticked = {id(r) for r in self.checked_recordings()}
        listed = {id(r) for r in self._recordings}
        self._recordings = recordings_in(self.viewer)
        self.sessions.clear()
        for rec in self._recordings:
            prep = " (preprocessed)" if preprocessed.get(rec) is not None else ""
            item = QListWidgetItem(f"{rec.dataset}/{rec.session}: {rec.n_rois} ROIs, {rec.n_frames} frames "
                                   f"({rec.duration_s:.0f} s at {rec.fs:g} Hz){prep}")
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if id(rec) in ticked or id(rec) not in listed else Qt.Unchecked)
            self.sessions.addItem(item)
        self._show_seconds()

    def checked_recordings(self) -> list[Recording]:
        return [rec for i, rec in enumerate(self._recordings)
                if i < self.sessions.count() and self.sessions.item(i).checkState() == Qt.Checked]

    def _job_inputs(self) -> tuple[list[Recording], dict[str, Any]]:
        recs = self.checked_recordings()
        if not recs:
            raise PocoError("tick at least one session (open a recording or File > Open Sample first)")
        prepared = [preprocessed.get(r) for r in recs]
        config = next((p.state.config.to_dict() for p in prepared if p is not None), {})
        fields = {"name": f"train {self.model.currentText()}", "model": self.model.currentText(), "context": self.context.value(), "horizon": self.horizon.value(),
                  "model_config": {**(self.calm.overrides() if self.model.currentText() == "calm" else {}),
                                   **parse_overrides(self.overrides.text())}, "preprocess": config,
                  "mlp_warmup": self.mlp_warmup.isChecked(), "embedding_lr_scale": self.embedding_lr.value(),
                  "cv_folds": int(self.cv_folds.currentData())}
        return recs, fields

    def _on_done(self, job: Job) -> None:
        recs = self.checked_recordings()
        if recs:
            self.show_forecasts(job.checkpoint, recs[0])
