"""Preprocessing settings, their preview, Apply and the split bands."""
from __future__ import annotations

import numpy as np
import pytest

from poco_core.data.preprocess import PreprocessConfig
from poco_napari.preprocess_widget import PreprocessWidget, load_settings
from poco_napari.selection import selection_for
from poco_napari.store import preprocessed
from poco_napari.traces import TracesWidget

PLUGIN = "poco-napari"
WAIT_MS = 20_000


@pytest.fixture
def opened(make_napari_viewer, recording_h5, qtbot):
    """A viewer with a recording and the Preprocessing dock, its first preview shown."""
    viewer = make_napari_viewer()
    viewer.open(str(recording_h5), plugin=PLUGIN)
    rec = viewer.layers[-1].metadata["poco_recording"]
    widget = PreprocessWidget(viewer)
    viewer.window.add_dock_widget(widget)
    with qtbot.waitSignal(widget.preview_updated, timeout=WAIT_MS):
        pass
    return viewer, widget, rec


def test_preview_follows_settings_and_selection(opened, qtbot):
    viewer, widget, rec = opened
    before, zscored = widget.preview_data()
    np.testing.assert_allclose(before, np.asarray(rec.traces[:, 0]))
    assert abs(zscored.mean()) < 1e-3 and abs(zscored.std() - 1) < 1e-3
    with qtbot.waitSignal(widget.preview_updated, timeout=WAIT_MS):
        widget.filter.setCurrentIndex(widget.filter.findData("lowpass"))
    _, lowpassed = widget.preview_data()
    assert np.abs(np.diff(lowpassed)).mean() < 0.75 * np.abs(np.diff(zscored)).mean()  # smoother (0.59x on the sample ROI 0)
    with qtbot.waitSignal(widget.preview_updated, timeout=WAIT_MS):
        selection_for(rec).set([11])
    before, _ = widget.preview_data()
    np.testing.assert_allclose(before, np.asarray(rec.traces[:, 11]))


def test_apply_stores_data_and_shows_split_bands(opened, qtbot):
    viewer, widget, rec = opened
    traces = TracesWidget(viewer)
    viewer.window.add_dock_widget(traces)
    widget.block_len.setValue(400)
    with qtbot.waitSignal(widget.applied, timeout=WAIT_MS) as blocker:
        widget.apply()
    data = blocker.args[0]
    assert preprocessed.get(rec) is data
    assert data.values.shape == (rec.n_frames, rec.n_rois) and data.state.config.block_len == 400
    bands = traces.split_bands()
    assert {name for name, _, _ in bands} == {"train", "val", "test"}
    assert min(start for _, start, _ in bands) == 0
    assert max(stop for _, _, stop in bands) == pytest.approx(rec.duration_s)


def test_settings_remembered(opened, qtbot):
    viewer, widget, rec = opened
    widget.dff.setChecked(True)
    widget.pca.setValue(3)
    assert load_settings() == PreprocessConfig(**{**widget.config().to_dict(), "split": (3, 1, 1)})
    again = PreprocessWidget(viewer)
    qtbot.addWidget(again)
    assert again.config().dff and again.config().pca_k == 3


def test_pca_preview_shows_first_component(opened, qtbot):
    viewer, widget, rec = opened
    with qtbot.waitSignal(widget.preview_updated, timeout=WAIT_MS):
        widget.pca.setValue(4)
    assert "PC 0" in widget.after_plot.titleLabel.text
