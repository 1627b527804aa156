"""CalM from the docks: grouped settings, a two-stage training job whose curves mark the stage
change, the codebook view and the Pearson column in the results, then finetuning its checkpoint."""
from __future__ import annotations

import math

from qtpy.QtCore import Qt
from test_jobs import cohort, open_recordings, run_to_end, tiny_settings  # noqa: F401  (fixture)

from poco_core.data.preprocess import PreprocessConfig
from poco_core.models import SessionSpec, build_model
from poco_core.models.calm.config import CalMConfig
from poco_core.training.checkpoint import save_checkpoint
from poco_core.training.restore import load_model, model_payload
from poco_napari.calm_settings import GROUPS, ROLLOUT, CalMSettings, RolloutSettings
from poco_napari.finetune_widget import FinetuneWidget
from poco_napari.job_docks import docks_for
from poco_napari.jobs import JobStatus
from poco_napari.training_widget import TrainingWidget


def test_settings_send_only_changes_from_the_preset(qtbot):
    settings = CalMSettings()
    qtbot.addWidget(settings)
    assert [g.text() for g in settings.groups] == ["CalM quantizer", "CalM transformer", "CalM rollout"]
    assert settings.overrides() == {"preset": "tiny"} and settings.inputs["codebook_size"].value() == 32
    settings.inputs["temperature"].setValue(0.7)
    assert settings.overrides() == {"preset": "tiny", "temperature": 0.7}
    settings.preset.setCurrentIndex(0)  # paper scale
    assert settings.inputs["codebook_size"].value() == 128 and settings.overrides() == {}


def _checkpoint(path, name: str, **config):
    model = build_model(name, [SessionSpec("s", "ds", ["u0", "u1"])], **config)
    return save_checkpoint(path, model_payload(model, {}, PreprocessConfig()))


def test_finetune_dock_shows_the_checkpoints_rollout_settings(qtbot, make_napari_viewer, tmp_path):
    """One definition: the rollout group is the Training dock's (same fields, labels, widgets) and
    exactly the settings a trained CalM may change; it appears for CalM checkpoints only."""
    assert {name for name, _, _ in GROUPS[ROLLOUT]} == set(CalMConfig.RUNTIME)
    training, rollout = CalMSettings(), RolloutSettings()
    qtbot.addWidget(training)
    qtbot.addWidget(rollout)
    assert rollout.group.text() == training.groups[-1].text() == ROLLOUT
    assert {k: type(v) for k, v in rollout.inputs.items()} == {k: type(training.inputs[k]) for k in CalMConfig.RUNTIME}
    ft = FinetuneWidget(make_napari_viewer())
    calm_path = _checkpoint(tmp_path / "calm.pt", "calm", preset="tiny", temperature=0.5, top_k=3, n_samples=4)
    with qtbot.waitSignal(ft.checkpoint_read, check_params_cb=lambda name: name == "calm"):
        ft.set_checkpoint(str(calm_path))
    assert ft.rollout.isVisibleTo(ft) and ft.rollout.values() == {"temperature": 0.5, "n_samples": 4, "top_k": 3}
    with qtbot.waitSignal(ft.checkpoint_read, check_params_cb=lambda name: name == "mlp"):
        ft.set_checkpoint(str(_checkpoint(tmp_path / "mlp.pt", "mlp")))
    assert not ft.rollout.isVisibleTo(ft)
    with qtbot.waitSignal(ft.checkpoint_read, check_params_cb=lambda name: name == ""):
        ft.set_checkpoint(str(tmp_path / "missing.pt"))
    assert not ft.rollout.isVisibleTo(ft)


def test_calm_training_job_then_finetune(qtbot, make_napari_viewer, cohort, tmp_path):  # noqa: F811
    viewer = make_napari_viewer()
    open_recordings(viewer, cohort)
    widget = TrainingWidget(viewer)
    assert not widget.calm.isVisibleTo(widget)
    widget.model.setCurrentText("calm")
    assert widget.calm.isVisibleTo(widget)
    widget.sessions.item(2).setCheckState(Qt.Unchecked)
    widget.context.setValue(12)
    widget.horizon.setValue(4)
    widget.calm.inputs["nq_steps"].setValue(6)
    tiny_settings(widget, tmp_path / "calm.pt", steps=12, val_every=4)
    job = run_to_end(qtbot, widget)
    assert job.status is JobStatus.DONE, job.message
    model = load_model(job.checkpoint)
    assert model.name == "calm" and model.config.nq_steps == 6 and model.config.codebook_size == 32
    docks = docks_for(viewer)
    assert [line.value() for line in docks.curves.stage_lines] == [0.5, 0.5, 6.5, 6.5]
    assert docks.results.codebook.isVisibleTo(docks.results) and docks.results.codebook.prototypes.shape == (32, 4)
    col = docks.results.table.column("Pearson r")
    assert math.isfinite(float(docks.results.table.item(0, col).text()))

    ft = FinetuneWidget(viewer)
    ft.recording.set_recording(cohort[2])
    assert ft.base.currentText() == job.checkpoint and ft.rollout.isVisibleTo(ft)  # the finished job's CalM
    assert ft.rollout.values() == {"temperature": 0.0, "n_samples": 1, "top_k": 0}  # greedy, as trained
    ft.rollout.inputs["temperature"].setValue(0.8)
    ft.rollout.inputs["n_samples"].setValue(2)
    ft.rollout.inputs["top_k"].setValue(5)
    tiny_settings(ft, tmp_path / "calm-ft.pt", steps=4, val_every=2)
    job = run_to_end(qtbot, ft)
    assert job.status is JobStatus.DONE, job.message
    tuned = load_model(job.checkpoint)
    assert cohort[2].session in {s.session for s in tuned.sessions}
    assert (tuned.config.temperature, tuned.config.n_samples, tuned.config.top_k) == (0.8, 2, 5)
