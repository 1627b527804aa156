"""The napari side on real tool output (suite2p 1.1.0 run and its NWB export, FISSA, Triplett):
regression tests of issue 14's GUI bugs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from napari.layers import Points
from qtpy.QtWidgets import QDockWidget

from poco_core.data.io import load_recording
from poco_core.data.preprocess import PreprocessConfig
from poco_napari.job_docks import docks_for
from poco_napari.preprocess_widget import PreprocessWidget
from poco_napari.selection import selection_for
from poco_napari.traces import TracesWidget

REPO = Path(__file__).resolve().parents[2]
SUITE2P = REPO / "tests" / "data" / "suite2p_sim" / "suite2p"
NWB = SUITE2P / "ophys.nwb"
TRIPLETT = REPO / "tests" / "data" / "triplett_zf_20170215-f3"
PLUGIN = "poco-napari"
WAIT_MS = 30_000


def poco_layers(viewer, role: str) -> list:
    return [layer for layer in viewer.layers if layer.metadata.get("poco_role") == role]


def docks_named(viewer, title: str) -> list[QDockWidget]:
    return [d for d in viewer.window._qt_window.findChildren(QDockWidget) if d.windowTitle() == title]


def test_training_and_finetuning_share_one_set_of_plot_docks(make_napari_viewer):
    viewer = make_napari_viewer()
    _, training = viewer.window.add_plugin_dock_widget(PLUGIN, "Training")
    _, finetuning = viewer.window.add_plugin_dock_widget(PLUGIN, "Finetuning")
    assert training.viewer is not finetuning.viewer  # napari hands each widget its own proxy
    assert docks_for(training.viewer) is docks_for(finetuning.viewer)
    assert len(docks_named(viewer, "POCO training curves")) == 1


def test_raster_groups_missing_values_as_one_block(make_napari_viewer):
    from poco_napari.traces import group_labels, raster_order

    viewer = make_napari_viewer()
    viewer.open(str(SUITE2P), plugin=PLUGIN)
    rois = poco_layers(viewer, "rois")[0]
    cluster = pd.array([pd.NA] * 53, dtype="Int64")  # the embedding dock's column before any analysis
    cluster[[3, 10, 20]] = [1, 0, 1]
    rois.features["cluster"] = cluster
    widget = TracesWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._fill_sort_box()
    widget.sort_box.setCurrentText("cluster")
    ticks = widget.raster.getAxis("left")._tickLevels[0]
    assert [name for _, name in ticks] == ["0", "1", "none"]
    assert list(raster_order(rois.features["cluster"])[:3]) == [10, 3, 20]
    assert (group_labels(pd.Series([np.nan, "a", None])) == ["none", "a", "none"]).all()


def test_iscell_preview_fits_the_recording_and_previews_the_roi(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open(str(SUITE2P), plugin=PLUGIN)
    rec = poco_layers(viewer, "rois")[0].metadata["poco_recording"]
    widget = PreprocessWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_config(PreprocessConfig(iscell_only=True))
    with qtbot.waitSignal(widget.preview_updated, timeout=WAIT_MS):
        selection_for(rec).set([2])
    assert "48 of 53 ROIs" in widget.status.text()
    _, after = widget.preview_data()
    assert len(after) == rec.n_frames and abs(after.std() - 1) < 1e-3
    non_cell = int(np.flatnonzero(~np.asarray(rec.roi_info["iscell"], dtype=bool))[0])
    with qtbot.waitSignal(widget.preview_updated, timeout=WAIT_MS):
        selection_for(rec).set([non_cell])
    assert "excluded" in widget.after_plot.titleLabel.text
    assert "Preview not possible" not in widget.status.text()


def test_successive_opens_lie_side_by_side(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open(str(SUITE2P), plugin=PLUGIN)
    first = poco_layers(viewer, "rois")[0]
    viewer.open(str(NWB), plugin=PLUGIN)
    second = [layer for layer in poco_layers(viewer, "rois") if layer is not first][0]
    assert second.translate[-1] >= first.extent.world[1][-1]  # right of the first, not on top of it


def test_selected_rois_without_positions_are_ringed(make_napari_viewer, tmp_path):
    traces = load_recording(NWB).traces  # real suite2p F, saved as a bare array: no positions
    np.save(tmp_path / "F.npy", np.asarray(traces))
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "F.npy"), plugin=PLUGIN)
    points = poco_layers(viewer, "rois")[0]
    assert isinstance(points, Points) and "grid" in points.name
    selection_for(points.metadata["poco_recording"]).set([4, 9])
    rings = poco_layers(viewer, "selection")[0]
    np.testing.assert_allclose(rings.data, points.data[[4, 9]])


@pytest.fixture
def suite2p_training(make_napari_viewer, tmp_path):
    """A viewer with the real suite2p run open and a Training dock set up for a short nlinear run."""
    from poco_core.data.preprocess import prepare
    from poco_napari.store import preprocessed
    from poco_napari.training_widget import TrainingWidget

    viewer = make_napari_viewer()
    viewer.open(str(SUITE2P), plugin=PLUGIN)
    rec = poco_layers(viewer, "rois")[0].metadata["poco_recording"]
    preprocessed.set(rec, prepare([rec], PreprocessConfig(block_len=100)).sessions[0])
    widget = TrainingWidget(viewer)
    widget.model.setCurrentText("nlinear")
    widget.context.setValue(12)
    widget.horizon.setValue(4)
    widget.steps.setValue(60)
    widget.val_every.setValue(10)
    widget.batch_size.setValue(8)
    widget.threads.setValue(1)
    widget.device.setCurrentText("cpu")
    widget.checkpoint.setText(str(tmp_path / "run.pt"))
    yield viewer, widget, rec
    if widget.job is not None and not widget.job.status.final:
        widget.job.cancel()


def test_status_line_and_job_table_agree_during_a_run(suite2p_training, qtbot):
    viewer, widget, rec = suite2p_training
    seen: list[tuple[str, str]] = []

    def compare() -> None:
        row = widget.table.rowCount() - 1
        step, best = widget.table.item(row, 2).text(), widget.table.item(row, 6).text()
        text = widget.status.text()
        if not widget.job.status.final:
            seen.append((f"step {step}" in text and (not best or best in text), f"{text!r} vs {step} {best}"))

    job = widget.start()
    job.changed.connect(compare)
    widget.table.refreshed.connect(compare)
    with qtbot.waitSignal(widget.job_finished, timeout=180_000):
        pass
    assert job.status.value == "done", job.message
    assert seen and all(ok for ok, _ in seen), [why for ok, why in seen if not ok][:3]
    assert widget.table.item(widget.table.rowCount() - 1, 3).text()  # elapsed shown


def test_forecast_samples_show_the_selected_rois(suite2p_training, qtbot):
    viewer, widget, rec = suite2p_training
    selection_for(rec).set([2, 5])
    job = widget.start()
    with qtbot.waitSignal(widget.job_finished, timeout=180_000):
        pass
    samples = [ev for ev in job.history if ev["type"] == "forecast_sample"]
    assert samples and all(ev["unit_ids"] == ["2", "5"] for ev in samples)


def test_demo_window_fits_1080p_with_every_dock(qtbot):
    from poco_napari.demo import open_viewer

    viewer = open_viewer()
    try:
        window = viewer.window._qt_window
        qtbot.waitUntil(lambda: window.minimumSizeHint().height() > 0)
        docks_for(viewer)  # what a training or finetuning run adds
        hint = window.minimumSizeHint()
        assert hint.height() <= 1080 - 80 and hint.width() <= 1920, hint  # room for title bar and taskbar
        titles = {d.windowTitle() for d in window.findChildren(QDockWidget)}
        assert {"POCO training curves", "POCO forecast vs actual", "POCO results"} <= titles
    finally:
        viewer.close()


def test_rois_of_a_real_suite2p_run_can_be_told_apart(make_napari_viewer, qtbot):
    from poco_core.data.preprocess import prepare
    from poco_napari.colors import EXCLUDED, HIDDEN, layer_roi_colors, restyle
    from poco_napari.store import preprocessed

    viewer = make_napari_viewer()
    viewer.open(str(SUITE2P), plugin=PLUGIN)
    rois = poco_layers(viewer, "rois")[0]
    rec = rois.metadata["poco_recording"]
    features = rois.features
    assert {"iscell", "iscell_prob"} <= set(features) and features["iscell"].sum() == 48
    colors = layer_roi_colors(rois)
    assert len({tuple(np.round(c, 3)) for c in colors}) >= 40  # no regions: a colour per ROI, not one blue
    non_cells = np.flatnonzero(~features["iscell"].to_numpy())
    restyle(rois, non_cells="grey")
    np.testing.assert_allclose(layer_roi_colors(rois, non_cells), np.tile(EXCLUDED, (len(non_cells), 1)))
    restyle(rois, non_cells="hide")
    np.testing.assert_allclose(layer_roi_colors(rois, non_cells)[:, 3], HIDDEN[3])
    restyle(rois, non_cells="show", outline=True)
    assert rois.contour > 0
    np.testing.assert_allclose(layer_roi_colors(rois), colors)
    # preprocessing that keeps cells only: the others look excluded
    preprocessed.set(rec, prepare([rec], PreprocessConfig(iscell_only=True, block_len=100)).sessions[0])
    assert rois.features["in_model"].sum() == 48
    np.testing.assert_allclose(layer_roi_colors(rois, non_cells), np.tile(EXCLUDED, (len(non_cells), 1)))


def test_traces_toggles_restyle_the_rois(make_napari_viewer):
    from poco_napari.colors import HIDDEN, layer_roi_colors

    viewer = make_napari_viewer()
    viewer.open(str(NWB), plugin=PLUGIN)  # suite2p's NWB export: iscell from the plane segmentation
    rois = poco_layers(viewer, "rois")[0]
    widget = TracesWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.non_cells.setCurrentText("hide")
    non_cells = np.flatnonzero(~rois.features["iscell"].to_numpy(dtype=bool))
    assert len(non_cells) == 5
    np.testing.assert_allclose(layer_roi_colors(rois, non_cells)[:, 3], HIDDEN[3])


def test_open_time_choices_series_and_rate(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.open(str(NWB), plugin=PLUGIN)
    widget = PreprocessWidget(viewer)
    viewer.window.add_dock_widget(widget)
    rec = poco_layers(viewer, "rois")[0].metadata["poco_recording"]
    widget.recording_box.set_recording(rec)
    assert widget.source.series.isEnabled() and widget.source.series.count() == 3
    widget.source.series.setCurrentText("Deconvolved/plane0")
    new = widget.source.apply()
    assert new.provenance["series"] == "Deconvolved/plane0"
    np.testing.assert_allclose(new.traces, rec.extra_traces["Deconvolved/plane0"])
    assert [layer.metadata["poco_recording"] for layer in poco_layers(viewer, "rois")] == [new]
    assert widget.recording_box.recording is new
    # a plain array states no rate: set it before modelling
    np.save(tmp_path / "F.npy", np.asarray(rec.traces))
    viewer.open(str(tmp_path / "F.npy"), plugin=PLUGIN)
    plain = poco_layers(viewer, "rois")[-1].metadata["poco_recording"]
    widget.recording_box.set_recording(plain)
    assert "placeholder" in widget.source.info.text()
    widget.source.fs.setValue(30.0)
    assert widget.source.apply().fs == 30.0


def test_cells_only_honours_caiman_accepted(tmp_path):
    import importlib.util

    from poco_core.data.preprocess import fit_preprocess

    spec = importlib.util.spec_from_file_location("test_io_caiman", REPO / "tests" / "test_io_caiman.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.write_caiman(tmp_path / "caiman.hdf5")  # the layout CaImAn's save_dict_to_hdf5 writes
    rec = load_recording(tmp_path / "caiman.hdf5")
    accepted = np.asarray(rec.roi_info["accepted"], dtype=bool)
    assert 0 < accepted.sum() < rec.n_rois
    state = fit_preprocess(rec, PreprocessConfig(iscell_only=True))
    np.testing.assert_array_equal(state.keep, np.flatnonzero(accepted))
