"""CalM from the docks: grouped settings, a two-stage training job whose curves mark the stage
change, the codebook view and the Pearson column in the results, then finetuning its checkpoint."""
from __future__ import annotations

import math

from qtpy.QtCore import Qt
from test_jobs import cohort, open_recordings, run_to_end, tiny_settings  # noqa: F401  (fixture)

from poco_core.training.restore import load_model
from poco_napari.calm_settings import CalMSettings
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
    tiny_settings(ft, tmp_path / "calm-ft.pt", steps=4, val_every=2)
    job = run_to_end(qtbot, ft)
    assert job.status is JobStatus.DONE, job.message
    assert cohort[2].session in {s.session for s in load_model(job.checkpoint).sessions}
