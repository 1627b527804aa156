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
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from poco_core.base.device import available_devices
from poco_core.base.errors import PocoError
from poco_core.data.recording import Recording
from poco_core.models import available_models
from poco_napari.calm_settings import CalMSettings
from poco_napari.forms import collapsible
from poco_napari.job_docks import docks_for
from poco_napari.jobs import Job, JobQueue, job_queue, make_job
from poco_napari.plot_base import Throttle
from poco_napari.store import preprocessed, recordings_in

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


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return "" if value is None else format(value, spec)


class JobTable(QTableWidget):
    """Every job of the queue: status, step, loss, best validation score (message as tooltip)."""

    COLUMNS = ("job", "status", "step", "loss", "best val score")

    def __init__(self, queue: JobQueue, parent: QWidget | None = None):
        super().__init__(0, len(self.COLUMNS), parent)
        self.queue = queue
        self.setHorizontalHeaderLabels(self.COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QTableWidget.NoEditTriggers)
        self.horizontalHeader().setStretchLastSection(True)
        self.setMaximumHeight(140)
        self._throttle = Throttle(self.refresh, parent=self)
        queue.added.connect(lambda job: self.refresh())
        queue.finished.connect(lambda job: self.refresh())
        queue.changed.connect(self._throttle.mark)
        self.refresh()

    def refresh(self) -> None:
        self.setRowCount(len(self.queue.jobs))
        for row, job in enumerate(self.queue.jobs):
            cells = (job.name, job.status.value, f"{job.step}/{job.total_steps}", _fmt(job.loss), _fmt(job.best_score, ".3f"))
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(job.message)
                self.setItem(row, col, item)
        self.resizeColumnsToContents()


class JobLauncher(QWidget):
    """Base of the training and finetuning docks. Subclasses add their own settings groups
    (``_groups``) and say what to run (``_job_inputs``); this class does the rest."""

    kind = "train"
    job_started = Signal(object)
    job_finished = Signal(object)

    def __init__(self, napari_viewer: Any, steps: int, lr: float, val_every: int):
        super().__init__()
        self.viewer = napari_viewer
        self.queue = job_queue()
        self.job: Job | None = None
        self.steps = QSpinBox(minimum=1, maximum=10_000_000, value=steps, singleStep=100)
        self.batch_size = QSpinBox(minimum=1, maximum=65_536, value=64)
        self.lr = QDoubleSpinBox(decimals=6, minimum=1e-6, maximum=1.0, singleStep=1e-4, value=lr)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.device = QComboBox()
        self.device.addItems(available_devices())
        self.val_every = QSpinBox(minimum=1, maximum=1_000_000, value=val_every, suffix=" steps")
        self.threads = QSpinBox(minimum=0, maximum=256, value=0, specialValueText="all cores but one")
        self.low_priority = QCheckBox("run below napari's priority")
        self.low_priority.setToolTip("The job yields the CPU to napari when both are busy (keeps the GUI smooth)")
        self.low_priority.setChecked(True)
        self.checkpoint = QLineEdit()
        self.checkpoint.setPlaceholderText(f"automatic, in {runs_dir()}")
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
        self.button.clicked.connect(self._on_button)
        self.queue_button.clicked.connect(self.start)

        layout = QVBoxLayout(self)
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
                           steps=self.steps.value(), batch_size=self.batch_size.value(), lr=self.lr.value(),
                           seed=self.seed.value(), device=self.device.currentText(),
                           val_every=self.val_every.value(), threads=self.threads.value(),
                           nice=NICE if self.low_priority.isChecked() else 0, **fields)
        except (PocoError, OSError, ValueError) as exc:
            self.status.setText(f"Cannot start: {exc}")
            return None
        self.job = job
        docks = docks_for(self.viewer)
        job.changed.connect(self._update)
        job.finished.connect(lambda: self._finished(job))
        docks.follow(job)
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
        if job.status.final:
            return f"{job.name}: {job.message}"
        best = "" if job.best_score is None else f", best validation score {job.best_score:.3f} (copy baseline 0)"
        return f"{job.name}: {job.status.value}, step {job.step}/{job.total_steps}{best}"

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
        super().__init__(napari_viewer, steps=2000, lr=3e-4, val_every=100)
        napari_viewer.layers.events.inserted.connect(self.refresh_sessions)
        napari_viewer.layers.events.removed.connect(self.refresh_sessions)
        preprocessed.changed.connect(self.refresh_sessions)
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
        self.calm = CalMSettings()
        self.model.currentTextChanged.connect(lambda name: self.calm.setVisible(name == "calm"))
        self.calm.setVisible(False)
        return [
            collapsible("Sessions", [("", self.sessions)], expanded=True),
            collapsible("Model", [("model", self.model), ("context", self.context), ("horizon", self.horizon),
                                  ("model options", self.overrides)], expanded=True),
            self.calm,
        ]

    def refresh_sessions(self, *_: Any) -> None:
        """List the open recordings, keeping ticks; new ones start ticked."""
        ticked = {id(r) for r in self.checked_recordings()}
        listed = {id(r) for r in self._recordings}
        self._recordings = recordings_in(self.viewer)
        self.sessions.clear()
        for rec in self._recordings:
            prep = " (preprocessed)" if preprocessed.get(rec) is not None else ""
            item = QListWidgetItem(f"{rec.dataset}/{rec.session}: {rec.n_rois} ROIs, {rec.n_frames} frames{prep}")
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if id(rec) in ticked or id(rec) not in listed else Qt.Unchecked)
            self.sessions.addItem(item)

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
                                   **parse_overrides(self.overrides.text())}, "preprocess": config}
        return recs, fields

    def _on_done(self, job: Job) -> None:
        recs = self.checked_recordings()
        if recs:
            self.show_forecasts(job.checkpoint, recs[0])
