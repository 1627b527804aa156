"""Finetuning dock: adapt a trained checkpoint to an open recording of a new animal.

Pick the checkpoint (a finished job's, or any file), the recording and what to train:
the new session's embeddings only (default), embeddings + the forecaster MLP, or all.
The live line shows the validation score against the copy baseline (score 0); the job keeps
the best checkpoint. For a CalM checkpoint the rollout settings (greedy or sampled decoding,
temperature, top-k: the Training dock's group) show its values and go to the job. Runs as a background job like training (``poco_napari.jobs``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QPushButton, QWidget
from superqt import QCollapsible

from poco_core.base.errors import CheckpointError, PocoError
from poco_core.data.recording import Recording
from poco_core.training.defaults import FINETUNE_MODES
from poco_core.training.checkpoint import load_checkpoint
from poco_napari.calm_settings import RolloutSettings
from poco_napari.forms import collapsible
from poco_napari.jobs import Job, JobStatus
from poco_napari.recording_box import RecordingBox
from poco_napari.training_widget import JobLauncher, runs_dir

MODE_NAMES = {"embeddings": "embeddings only", "embeddings+mlp": "embeddings + MLP", "all": "all parameters"}


class FinetuneWidget(JobLauncher):
    """Dock widget; ``napari_viewer`` is injected by napari."""

    kind = "finetune"
    checkpoint_read = Signal(str)  # the model name of the checkpoint just chosen ("" if unreadable)

    def __init__(self, napari_viewer: Any):
        super().__init__(napari_viewer)
        self.queue.finished.connect(self._list_finished)
        self._list_finished()
        self._read_checkpoint(self.base.currentText())

    def _groups(self) -> list[QCollapsible]:
        self.base = QComboBox()
        self.base.setEditable(True)
        self.base.setToolTip("A trained checkpoint: one from a finished job, or Browse for a file")
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse_base)
        base_row = QWidget()
        row = QHBoxLayout(base_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.base, 1)
        row.addWidget(browse)
        self.recording = RecordingBox(self.viewer)
        self.mode = QComboBox()
        for key in FINETUNE_MODES:
            self.mode.addItem(MODE_NAMES[key], key)
        self.rollout = RolloutSettings()
        self.rollout.setVisible(False)
        self.base.currentTextChanged.connect(self._read_checkpoint)
        return [collapsible("Finetune", [("checkpoint", base_row), ("new recording", self.recording),
                                         ("train", self.mode)], expanded=True), self.rollout]

    def set_checkpoint(self, path: str) -> None:
        self.base.setCurrentText(path)

    def _read_checkpoint(self, path: str) -> None:
        """Show the rollout settings, with the checkpoint's values, when it holds a CalM model."""
        model: dict[str, Any] = {}
        if path.strip() and Path(path.strip()).is_file():
            try:
                model = load_checkpoint(path.strip()).get("model", {})
            except CheckpointError:
                model = {}
        is_calm = model.get("name") == "calm"
        if is_calm:
            self.rollout.load(model.get("config", {}))
        self.rollout.setVisible(is_calm)
        self.checkpoint_read.emit(str(model.get("name", "")))

    def _list_finished(self, *_: Any) -> None:
        """Offer the checkpoints of finished training jobs (newest first), keeping the typed text."""
        done = [j.checkpoint for j in reversed(self.queue.jobs)
                if j.spec.kind == "train" and j.status is JobStatus.DONE and j.checkpoint]
        current = self.base.currentText()
        if done == [self.base.itemText(i) for i in range(self.base.count())]:
            return
        self.base.blockSignals(True)
        self.base.clear()
        self.base.addItems(done)
        self.base.setCurrentText(current or (done[0] if done else ""))
        self.base.blockSignals(False)
        self._read_checkpoint(self.base.currentText())

    def _browse_base(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Trained checkpoint", str(runs_dir()), "Checkpoints (*.pt)")
        if path:
            self.set_checkpoint(path)

    def _job_inputs(self) -> tuple[list[Recording], dict[str, Any]]:
        base = self.base.currentText().strip()
        if not base:
            raise PocoError("choose a trained checkpoint first (train one, or Browse for a file)")
        rec = self.recording.recording
        if rec is None:
            raise PocoError("open the new animal's recording first")
        return [rec], {"init_checkpoint": base, "mode": self.mode.currentData(), "name": f"finetune {rec.session}",
                       "model_config": self.rollout.values() if self.rollout.isVisibleTo(self) else {}}

    def _describe(self, job: Job) -> str:
        text = super()._describe(job)
        last = next((ev for ev in reversed(job.history) if ev.get("type") == "validation"), None)
        if last is None or job.status.final:
            return text
        return f"{text}\nlatest validation score {last['val_score']:.3f} vs copy baseline 0.000"

    def _on_done(self, job: Job) -> None:
        rec = self.recording.recording
        if rec is not None:
            self.show_forecasts(job.checkpoint, rec)
