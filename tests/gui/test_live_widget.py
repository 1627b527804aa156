"""The Live panel follows a source as frames are appended: traces, raster, forecasts, score."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from qtpy.QtCore import Qt

from poco_core.live import LiveRecording
from poco_core.models import SessionSpec, build_model
from poco_napari.live_widget import LiveWidget

N, FS, C, P = 10, 5.0, 8, 3


def _traces(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.cumsum(rng.normal(size=(n, N)), axis=0).astype(np.float32)


@pytest.fixture
def panel(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = LiveWidget(viewer)
    viewer.window.add_dock_widget(widget)
    yield widget
    widget.disconnect_source()


def _drawn_up_to(widget, frame: int, forecast: bool = False):
    """A waitSignal check: frame ``frame`` on screen (and, with ``forecast``, the forecast made at it)."""
    return lambda last, forecast_t: last >= frame and (not forecast or forecast_t >= frame)


def test_panel_updates_as_frames_are_appended(panel, qtbot):
    torch.manual_seed(0)
    model = build_model("nlinear", [SessionSpec("fish", "d", [str(i) for i in range(N)])], context=C, horizon=P)
    source = LiveRecording(N, FS)
    panel.units_edit.setText("1, 4")
    panel.connect_source(source, model)
    x = _traces(60)
    with qtbot.waitSignal(panel.drawn, timeout=20000, check_params_cb=_drawn_up_to(panel, 29, forecast=True)):
        source.append(x[:30])
    actual, ahead, past, label = panel.plots.curves[0]
    assert len(panel.plots.curves) == 2 and label.toPlainText() == "1"
    assert np.nanmax(actual.getData()[0]) == pytest.approx(29 / FS)
    assert ahead.getData()[0][0] == pytest.approx(29 / FS) and ahead.getData()[0][-1] == pytest.approx((29 + P) / FS)
    assert past.getData()[0][-1] == pytest.approx(29 / FS)  # the forecast of P frames ago ends at now
    assert "running mean/std" in panel.preprocess_label.text()
    assert "score vs copy" in panel.score_label.text()
    assert panel.adapt_btn.isEnabled()
    for i in range(30, 60, 5):  # frames keep arriving: the plots keep extending
        with qtbot.waitSignal(panel.drawn, timeout=20000, check_params_cb=_drawn_up_to(panel, i + 4, forecast=True)):
            source.append(x[i : i + 5])
    assert np.nanmax(actual.getData()[0]) == pytest.approx(59 / FS)
    assert panel.plots.raster.image.shape[0] == N
    assert "running score vs copy" in panel.score_label.text()


def test_panel_bins_frames_for_a_binned_model(panel, qtbot):
    """A model trained at 5 Hz with --target-fs 5 on a 15 Hz live source: 3 frames per model frame,
    the time axis and forecasts at the binned rate, and the binning said in the panel."""
    from types import SimpleNamespace

    from poco_core.data.preprocess import PreprocessConfig

    torch.manual_seed(0)
    model = build_model("nlinear", [SessionSpec("fish", "d", [str(i) for i in range(N)])], context=C, horizon=P)
    model.poco_meta = SimpleNamespace(preprocess_config=PreprocessConfig(target_fs=FS), preprocess={"fish": SimpleNamespace(fs=FS)})
    source = LiveRecording(N, 3 * FS)
    panel.connect_source(source, model)
    with qtbot.waitSignal(panel.drawn, timeout=20000, check_params_cb=_drawn_up_to(panel, 29, forecast=True)):
        source.append(np.repeat(_traces(30), 3, axis=0))  # 90 raw frames = 30 model frames
    actual, ahead, _, _ = panel.plots.curves[0]
    assert np.nanmax(actual.getData()[0]) == pytest.approx(29 / FS)
    assert ahead.getData()[0][-1] == pytest.approx((29 + P) / FS)
    assert "binning: 3 frames into 1, 15 Hz -> 5 Hz" in panel.preprocess_label.text()


def test_panel_connects_to_a_chunk_folder_without_a_model(panel, qtbot, tmp_path):
    x = _traces(20)
    np.save(tmp_path / "chunk_000.npy", x[:12])
    panel.source_edit.setText(str(tmp_path))
    panel.fs_spin.setValue(FS)
    with qtbot.waitSignal(panel.drawn, timeout=20000, check_params_cb=_drawn_up_to(panel, 11)):
        qtbot.mouseClick(panel.connect_btn, Qt.LeftButton)
    assert panel.connect_btn.text() == "Disconnect"
    assert "no model" in panel.score_label.text() and not panel.adapt_btn.isEnabled()
    with qtbot.waitSignal(panel.drawn, timeout=20000, check_params_cb=_drawn_up_to(panel, 19)):
        np.save(tmp_path / "chunk_001.npy", x[12:])
    qtbot.mouseClick(panel.connect_btn, Qt.LeftButton)
    assert panel.connect_btn.text() == "Connect" and not panel.connected


def test_plotted_units_follow_the_viewers_roi_selection(make_napari_viewer, qtbot):
    """With this animal's recording open, clicking ROIs (the shared selection) picks the plotted
    units, and typing units selects those ROIs in the viewer."""
    from poco_core.data.simulate import simulate_recording
    from poco_napari.colors import layer_roi_colors
    from poco_napari.reader import layers_for
    from poco_napari.selection import selection_for
    from poco_napari.store import roi_layers

    rec = simulate_recording(n_rois=N, n_frames=60, seed=3)
    viewer = make_napari_viewer()
    for data, meta, kind in layers_for([rec]):
        viewer._add_layer_from_data(data, meta, kind)
    panel = LiveWidget(viewer)
    viewer.window.add_dock_widget(panel)
    source = LiveRecording(N, FS, roi_ids=rec.roi_ids)
    panel.connect_source(source)
    try:
        with qtbot.waitSignal(panel.drawn, timeout=20000, check_params_cb=_drawn_up_to(panel, 19)):
            source.append(np.asarray(rec.traces[:20]))
        assert rec.session in panel.link_label.text()
        assert selection_for(rec).indices == (0, 1, 2)  # the panel's default units, shown in the viewer
        with qtbot.waitSignal(panel.drawn, timeout=20000):
            selection_for(rec).set([5, 2])
        assert [c[3].toPlainText() for c in panel.plots.curves] == [str(rec.roi_ids[5]), str(rec.roi_ids[2])]
        layer = roi_layers(viewer, rec)[0]  # each unit is drawn in its ROI's colour
        expected = [tuple(int(255 * c) for c in rgba[:3]) for rgba in layer_roi_colors(layer, [5, 2])]
        assert [c[0].opts["pen"].color().getRgb()[:3] for c in panel.plots.curves] == expected
        assert expected[0] != expected[1]
        panel.units_edit.setText("7")
        panel.units_edit.editingFinished.emit()
        assert selection_for(rec).indices == (7,)
    finally:
        panel.disconnect_source()
    assert panel.link_label.text() == ""


def test_switch_interval_is_short_while_connected_and_restored(panel):
    import sys

    from poco_napari.live_widget import LIVE_SWITCH_INTERVAL_S

    before = sys.getswitchinterval()
    panel.connect_source(LiveRecording(N, FS))
    assert sys.getswitchinterval() == pytest.approx(LIVE_SWITCH_INTERVAL_S)
    panel.disconnect_source()
    assert sys.getswitchinterval() == pytest.approx(before)
