"""Clicking ROIs, the shared selection, and what the traces dock shows."""
from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Labels, Points
from napari.utils.key_bindings import KeyBinding
from qtpy.QtCore import Qt

from poco_napari.selection import selection_for
from poco_napari.traces import TracesWidget, normalised

PLUGIN = "poco-napari"


@pytest.fixture
def opened(make_napari_viewer, recording_h5, qtbot):
    """A viewer with a small recording open and the Traces dock added."""
    viewer = make_napari_viewer()
    viewer.open(str(recording_h5), plugin=PLUGIN)
    widget = TracesWidget(viewer)
    viewer.window.add_dock_widget(widget)
    rois = next(layer for layer in viewer.layers if isinstance(layer, Labels))
    return viewer, widget, rois, rois.metadata["poco_recording"]


def roi_pixel(labels: Labels, index: int) -> tuple[float, float]:
    """A world position inside ROI ``index`` (a pixel where it has the largest weight)."""
    ys, xs = np.nonzero(labels.data == index + 1)
    return ys[0] + labels.translate[0], xs[0] + labels.translate[1]


def test_click_selects_and_traces_show_that_roi(opened, click):
    viewer, widget, rois, rec = opened
    with_signal = selection_for(rec).changed
    click(viewer, roi_pixel(rois, 7))
    assert selection_for(rec).indices == (7,)
    assert widget.shown_rois == (7,)
    _, y = widget.curve(7).getOriginalDataset()
    np.testing.assert_allclose(y, normalised(np.asarray(rec.traces[:, 7])), atol=1e-5)
    click(viewer, roi_pixel(rois, 12), shift=True)
    click(viewer, roi_pixel(rois, 3), shift=True)
    assert widget.shown_rois == (7, 12, 3)
    click(viewer, roi_pixel(rois, 12), shift=True)  # shift-click on a selected ROI removes it
    assert widget.shown_rois == (7, 3)
    click(viewer, (-50.0, -50.0))  # outside every ROI: selection unchanged
    assert selection_for(rec).indices == (7, 3)
    assert with_signal is selection_for(rec).changed


def test_selection_shown_in_viewer(opened):
    viewer, widget, rois, rec = opened
    selection_for(rec).set([4, 9])
    rings = next(layer for layer in viewer.layers if layer.metadata.get("poco_role") == "selection")
    np.testing.assert_allclose(rings.data, rec.roi_centroids()[[4, 9]])
    assert rings.features["roi_id"].tolist() == [rec.roi_ids[4], rec.roi_ids[9]]
    assert rois.selected_label == 10
    assert viewer.layers.selection.active is rois  # the rings never steal the active layer


def test_trace_colours_follow_roi_colours(opened):
    from poco_napari.colors import layer_roi_colors, paint_rois

    viewer, widget, rois, rec = opened
    selection_for(rec).set([0, 5])
    paint_rois(rois, "snr", colormap="magma")
    pen = widget.curve(5).opts["pen"].color().getRgbF()
    np.testing.assert_allclose(pen[:3], layer_roi_colors(rois, [5])[0, :3], atol=0.01)


def test_arrow_keys_step(opened, qtbot):
    viewer, widget, rois, rec = opened
    selection_for(rec).set([5])
    qtbot.keyClick(widget, Qt.Key_Down)
    assert selection_for(rec).indices == (6,)
    qtbot.keyClick(widget, Qt.Key_Up)
    qtbot.keyClick(widget, Qt.Key_Up)
    assert selection_for(rec).indices == (4,)
    for key, expected in (("Down", 5), ("Up", 4)):  # in the viewer, on the active ROI layer
        rois.keymap[KeyBinding.from_str(key)](rois)
        assert selection_for(rec).indices == (expected,)


def test_raster_sorted_by_region_and_click_selects(opened):
    viewer, widget, rois, rec = opened
    widget.sort_box.setCurrentText("region")
    image = widget.raster_image.image
    assert image.shape == (rec.n_rois, min(rec.n_frames, 2000))
    ticks = widget.raster.getAxis("left")._tickLevels[0]
    assert sorted(name for _, name in ticks) == sorted(set(rec.regions))


def test_points_layer_click(make_napari_viewer, format_files, click):
    viewer = make_napari_viewer()
    viewer.open(str(format_files["npy"]), plugin=PLUGIN)
    points = next(layer for layer in viewer.layers if isinstance(layer, Points))
    rec = points.metadata["poco_recording"]
    click(viewer, points.data[2] + np.asarray(points.translate))
    assert selection_for(rec).indices == (2,)


def test_time_cursor_follows_movie(make_napari_viewer, qtbot):
    from poco_core.data.simulate import simulate_recording
    from poco_napari.reader import layers_for

    rec = simulate_recording(n_rois=10, n_frames=300, image_shape=(32, 32))
    rec.anatomy = np.repeat(rec.anatomy[None], rec.n_frames, axis=0)  # a movie, frame per sample
    viewer = make_napari_viewer()
    for data, meta, kind in layers_for([rec]):
        viewer._add_layer_from_data(data, meta, kind)
    widget = TracesWidget(viewer)
    assert widget.cursor.isVisible()
    viewer.dims.set_current_step(0, 150)
    assert widget.cursor.value() == pytest.approx(150 / rec.fs)
    widget.cursor.setValue(30 / rec.fs)
    assert viewer.dims.current_step[0] == 30
