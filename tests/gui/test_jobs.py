"""Training and finetuning from the docks: the real trainer in a spawned child process.

Tiny model, tiny data, few steps, one torch thread; every wait is on a Qt signal.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from qtpy.QtCore import Qt

from poco_core.data.preprocess import PreprocessConfig, prepare
from poco_core.data.simulate import simulate_cohort
from poco_core.training.defaults import EMBEDDING_ANALYSIS, TRAIN_DEFAULTS
from poco_core.training.restore import load_model
from poco_napari.finetune_widget import FinetuneWidget
from poco_napari.job_docks import docks_for
from poco_napari.jobs import CANCEL_GRACE_S, JobStatus
from poco_napari.reader import layers_for
from poco_napari.store import preprocessed
from poco_napari.training_widget import TrainingWidget

TINY = "d_model=16, hidden=32, n_latents=4, cross_head_dim=8, self_attn_heads=2, self_attn_head_dim=8"
JOB_TIMEOUT_MS = 180_000


def open_recordings(viewer, recs) -> None:
    """Add the reader's layers and preprocess each recording as the Preprocessing dock's Apply does."""
    for data, kwargs, kind in layers_for(recs):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    for rec in recs:
        preprocessed.set(rec, prepare([rec], PreprocessConfig(block_len=100)).sessions[0])


@pytest.fixture
def cohort():
    """Two training animals and a held-out one."""
    return simulate_cohort(3, n_rois=12, n_frames=600, seed=1)


def tiny_settings(widget, path: Path, steps: int, val_every: int) -> None:
    widget.steps.setValue(steps)
    widget.val_every.setValue(val_every)
    widget.batch_size.setValue(8)
    widget.threads.setValue(1)
    widget.device.setCurrentText("cpu")
    widget.checkpoint.setText(str(path))


@pytest.fixture
def training(make_napari_viewer, cohort, tmp_path):
    viewer = make_napari_viewer()
    open_recordings(viewer, cohort)
    widget = TrainingWidget(viewer)
    widget.sessions.item(2).setCheckState(Qt.Unchecked)  # the held-out animal
    widget.context.setValue(12)
    widget.horizon.setValue(4)
    widget.overrides.setText(TINY)
    tiny_settings(widget, tmp_path / "run.pt", steps=30, val_every=10)
    yield widget
    if widget.job is not None and not widget.job.status.final:
        widget.job.cancel()


def run_to_end(qtbot, widget):
    with qtbot.waitSignal(widget.job_finished, timeout=JOB_TIMEOUT_MS):
        widget.button.click()
    return widget.job


def start_until_checkpoint(qtbot, widget):
    """Start a long job and return once it has written its first checkpoint."""
    widget.steps.setValue(100_000)
    widget.val_every.setValue(5)
    with qtbot.waitSignal(widget.job_started):
        widget.button.click()
    job = widget.job
    with qtbot.waitSignal(job.events, timeout=JOB_TIMEOUT_MS,
                          check_params_cb=lambda batch: any(e["type"] == "checkpoint" for e in batch)):
        pass
    assert widget.button.text() == "Cancel"
    return job


def test_training_job_feeds_the_plots_and_writes_a_checkpoint(qtbot, training):
    job = run_to_end(qtbot, training)
    assert job.status is JobStatus.DONE, job.message
    assert Path(job.checkpoint).is_file() and load_model(job.checkpoint).name == "poco"
    docks = docks_for(training.viewer)
    assert docks.curves.steps == list(range(1, 31))
    assert docks.curves.val_steps == [10, 20, 22, 30]  # 22: the end of the default MLP warm-up (0.75 x 30)
    assert docks.forecast.view.data is not None
    assert docks.results.table.rowCount() == 2
    assert docks.results.errors.model_curve.xData.tolist() == [1, 2, 3, 4]
    assert training.button.text() == "Start" and "finished" in training.status.text()
    assert training.table.item(0, 1).text() == "done"
    assert job.best_step == job.result["best_step"]  # the summary names the checkpoint kept, as the curves' star
    # which model the warm-up kept is in the job's last line
    assert ("the model kept is POCO's MLP" in job.message) is (job.result["kept"] == "mlp")


def test_training_for_embeddings_is_one_stage_with_faster_embeddings(qtbot, training):
    """The Model group's "MLP warm-up" box and "embedding lr" field are `poco train
    --no-mlp-warmup --embedding-lr-scale 10`, the settings the embedding notes advise: one stage
    (no validation at the warm-up's end) and the embeddings' factor reaching the loop."""
    assert training.mlp_warmup.isChecked()  # the engine's defaults
    assert training.embedding_lr.value() == TRAIN_DEFAULTS["embedding_lr_scale"]
    training.mlp_warmup.setChecked(False)
    training.embedding_lr.setValue(EMBEDDING_ANALYSIS["embedding_lr_scale"])
    job = run_to_end(qtbot, training)
    assert job.status is JobStatus.DONE, job.message
    assert job.spec.mlp_warmup is False and docks_for(training.viewer).curves.val_steps == [10, 20, 30]
    start = next(ev for ev in job.history if ev["type"] == "start")
    assert (start["mlp_warmup"], start["embedding_lr_scale"]) == (False, 10.0)


def test_cross_validated_training_is_one_job_and_says_what_it_chose(qtbot, training):
    """The Model group's "cross-validate" choice is `poco train --cv-folds K`: one job over the 2K runs,
    the curves marking each run, the MLP warm-up box greyed out (the candidates replace it), and the
    job's last line saying which model was kept and why."""
    assert training.cv_folds.currentData() == 0 and training.mlp_warmup.isEnabled()  # off by default, as the CLI
    training.cv_folds.setCurrentIndex(training.cv_folds.findData(2))
    assert not training.mlp_warmup.isEnabled()
    training.steps.setValue(8)
    training.val_every.setValue(4)
    job = run_to_end(qtbot, training)
    assert job.status is JobStatus.DONE, job.message
    # the default split's two runs first; the other fold's only where they are within noise of each other
    runs = 2 if job.result["crossval"]["settled_on_default_split"] else 4
    assert job.spec.cv_folds == 2 and job.total_steps == runs * 8 and job.step == runs * 8  # a full bar either way
    curves = docks_for(training.viewer).curves
    assert [line.label.format for line in curves.stage_lines[::2]] == ["fold 2/2: MLP", "fold 2/2: POCO",
                                                                       "fold 1/2: MLP", "fold 1/2: POCO"][:runs]
    assert "cross-validation chose" in job.message and load_model(job.checkpoint).name == "poco"
    assert job.best_step == job.result["best_step"] and job.best_score == pytest.approx(job.result["best_val_score"])
    # the star marks the run kept, not the last one; the runs' lines are not joined
    assert curves.best == (job.result["best_event_step"], pytest.approx(job.result["best_val_score"]))
    assert sum(x != x for x in curves.losses) == runs - 1


def test_cancel_stops_within_2s_and_leaves_a_loadable_checkpoint(qtbot, training):
    job = start_until_checkpoint(qtbot, training)
    t0 = time.monotonic()
    with qtbot.waitSignal(job.finished, timeout=int(CANCEL_GRACE_S * 1000) + 3000):
        training.button.click()
    # a cooperative stop, well inside the grace period: the run itself stopped and said what it kept
    # (a child slow to exit after sending its result may still be reaped with SIGTERM; that is not "by force")
    assert time.monotonic() - t0 < 10.0 and "by force" not in job.message
    assert job.status is JobStatus.CANCELLED and job.result is not None and job.result["cancelled"], job.message
    assert "checkpoint:" in job.message
    assert load_model(job.checkpoint) is not None
    assert training.button.text() == "Start"


def test_killed_job_is_reported_and_napari_survives(qtbot, training):
    job = start_until_checkpoint(qtbot, training)
    with qtbot.waitSignal(job.finished, timeout=10_000):
        os.kill(job.pid, signal.SIGKILL)
    assert job.status is JobStatus.FAILED
    assert "killed by SIGKILL" in training.status.text()
    assert load_model(job.checkpoint) is not None  # the best so far is still there
    training.viewer.add_points([[1.0, 1.0]])  # napari still works
    assert training.button.text() == "Start"


def test_finetune_from_a_finished_job_reports_the_score(qtbot, training, cohort, tmp_path):
    trained = run_to_end(qtbot, training)
    widget = FinetuneWidget(training.viewer)
    assert widget.base.currentText() == trained.checkpoint
    widget.recording.set_recording(cohort[2])
    tiny_settings(widget, tmp_path / "finetuned.pt", steps=20, val_every=10)
    job = run_to_end(qtbot, widget)
    assert job.status is JobStatus.DONE, job.message
    assert job.best_score is not None and "best validation score" in widget.status.text()
    assert docks_for(training.viewer).results.table.score_of(cohort[2].session) is not None
