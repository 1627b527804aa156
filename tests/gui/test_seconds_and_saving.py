"""Time in seconds, honest results tables, tooltips and saving, on the real suite2p 1.1.0 run."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SUITE2P = REPO / "tests" / "data" / "suite2p_sim" / "suite2p"
PLUGIN = "poco-napari"
WAIT_MS = 30_000


@pytest.fixture
def suite2p_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open(str(SUITE2P), plugin=PLUGIN)
    rec = next(layer for layer in viewer.layers if layer.metadata.get("poco_role") == "rois").metadata["poco_recording"]
    return viewer, rec


def test_training_settings_show_seconds_and_tooltips(suite2p_viewer):
    from poco_napari.training_widget import TrainingWidget

    viewer, rec = suite2p_viewer
    widget = TrainingWidget(viewer)
    widget.context.setValue(48)
    assert widget.context_field.seconds.text() == "= 1.6 s at 30 Hz"
    widget.horizon.setValue(15)
    assert widget.horizon_field.seconds.text() == "= 0.5 s at 30 Hz"
    for box in (widget.model, widget.context, widget.horizon, widget.overrides, widget.steps, widget.batch_size,
                widget.lr, widget.val_every, widget.seed, widget.device, widget.threads, widget.checkpoint):
        assert box.toolTip(), box


def test_preprocessing_block_in_seconds_suite2p_group_open_and_tooltips(suite2p_viewer, qtbot):
    from poco_napari.preprocess_widget import PreprocessWidget

    viewer, rec = suite2p_viewer
    widget = PreprocessWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.block_len.setValue(300)
    assert widget.block_field.seconds.text() == "= 10 s at 30 Hz"
    assert widget.suite2p_group.isExpanded()
    assert all(box.toolTip() for box in widget._inputs)


def test_forecast_samples_on_a_time_axis_in_seconds(qtbot):
    from poco_napari.forecast_plot import ForecastDock

    dock = ForecastDock()
    qtbot.addWidget(dock)
    dock.fs = {"suite2p_sim": 30.0}
    ctx, act = np.zeros((2, 12)), np.ones((2, 3))
    dock.add_events([{"type": "forecast_sample", "step": 10, "session": "suite2p_sim", "rois": [0, 1],
                      "unit_ids": ["0", "1"], "context": ctx.tolist(), "actual": act.tolist(), "forecast": act.tolist()}])
    x, _ = dock.view.items[0]["actual"].getData()
    np.testing.assert_allclose(x, np.arange(3) / 30.0)
    assert "(s)" in dock.view.plot.getAxis("bottom").labelText


SESSIONS = {"suite2p_sim": {"dataset": "default", "score": 0.42, "mse": 0.72, "mae": 0.6, "copy_mse": 1.25,
                            "copy_mae": 0.9, "mean_mse": 0.99, "mean_score": 0.21, "smooth_mse": 0.77,
                            "smooth_score": 0.38, "diagnosis": "copy is worse than predicting the mean: the traces are noisy"}}


def test_results_show_the_baselines_and_diagnosis_and_save_like_the_cli(qtbot, tmp_path):
    from poco_core.analysis.evaluate import EvalResult, table_to_csv
    from poco_napari.results_table import ResultsDock

    dock = ResultsDock()
    qtbot.addWidget(dock)
    dock.model = "poco"
    dock.show_scores(SESSIONS, "test")
    headers = [dock.table.horizontalHeaderItem(c).text() for c in range(dock.table.columnCount())]
    assert {"copy MSE", "mean MSE", "smoothed-copy MSE"} <= set(headers)
    assert dock.table.item(0, dock.table.column("mean MSE")).text() == "0.9900"
    assert "worse than predicting the mean" in dock.diagnosis.text()
    dock.show_scores({"a": {"score": 0.1, "mse": 1.0, "copy_mse": 1.1}}, "val")  # older engines: no baselines
    assert dock.table.column("mean MSE") is None and dock.diagnosis.text() == ""
    dock.show_scores(SESSIONS, "test")
    written = dock.save_scores(tmp_path / "scores.csv")
    assert written.read_bytes().decode() == table_to_csv(EvalResult("poco", "test", SESSIONS).rows())
    models = {row["model"] for row in csv.DictReader(written.open())}
    assert {"poco", "copy"} <= models
    rows = json.loads(dock.save_scores(tmp_path / "scores.json").read_text())
    assert rows[0]["model"] in models


@pytest.mark.slow
def test_forecasts_saved_like_poco_forecast(tmp_path):
    from poco_core.analysis.forecast import rolling_forecast
    from poco_core.data.io import load_recording
    from poco_core.data.preprocess import PreprocessConfig
    from poco_core.training.restore import load_model
    from poco_core.training.train import train
    from poco_napari.saving import save_forecasts

    rec = load_recording(SUITE2P)
    train([rec], model="nlinear", context=12, horizon=4, steps=4, batch_size=8, val_every=4, device="cpu",
          preprocess=PreprocessConfig(block_len=100), checkpoint=tmp_path / "m.pt").wait()
    model = load_model(tmp_path / "m.pt")
    saved = np.load(save_forecasts(model, rec, tmp_path / "fc.npz"))
    fc = rolling_forecast(model, rec, 11, rec.n_frames - 4, 4)
    np.testing.assert_array_equal(saved["t"], fc.t)
    np.testing.assert_allclose(saved["z"], fc.z)
    assert saved["unit_ids"].tolist() == fc.unit_ids and float(saved["fs"]) == 30.0
    np.testing.assert_allclose(saved["time_s"], fc.frames / 30.0)
