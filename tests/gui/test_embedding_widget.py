"""The embedding dock: background analysis, painting by cluster / similarity, selection both ways."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from napari.layers import Labels, Points

from poco_core.data.simulate import simulate_recording
from poco_core.models import build_model
from poco_core.models.base import SessionSpec
from poco_napari.colors import layer_roi_colors
from poco_napari.embedding_widget import EmbeddingWidget
from poco_napari.layers import recording_layers
from poco_napari.selection import selection_for

TIMEOUT_MS = 120_000


def untrained_poco(rec):
    """A real (tiny, untrained) POCO for the recording's session: the widget's model contract."""
    spec = SessionSpec(rec.session, rec.dataset, rec.roi_ids.tolist())
    return build_model("poco", [spec], context=16, horizon=4, hidden=16, d_model=16, self_attn_heads=2,
                       self_attn_head_dim=8, cross_head_dim=8)


@pytest.fixture(params=["labels", "points"])
def dock(request, make_napari_viewer, qtbot):
    rec = simulate_recording(n_rois=60, n_frames=200, seed=2)
    if request.param == "points":
        rec = replace(rec, centroids=rec.roi_centroids(), footprints=None)
    viewer = make_napari_viewer()
    for data, meta, kind in recording_layers(rec):
        viewer._add_layer_from_data(data, meta, kind)
    layer = viewer.layers[-1]
    assert isinstance(layer, Points if request.param == "points" else Labels)
    widget = EmbeddingWidget(viewer)
    qtbot.addWidget(widget)
    if request.param in _computed:  # the same recording: reuse the analysis, skip UMAP
        widget.show_result(_computed[request.param])
    else:
        widget.set_model(untrained_poco(rec))
        widget.n_clusters.setValue(3)
        with qtbot.waitSignal(widget.analysis_done, timeout=TIMEOUT_MS):
            widget.compute()
        _computed[request.param] = widget.result
    return widget, viewer, layer, rec


_computed: dict = {}


def test_rois_are_painted_in_their_cluster_colour(dock):
    widget, _, layer, rec = dock
    result = widget.result
    assert {"cluster", "umap_x", "umap_y"} <= set(layer.features)
    assert {f"similarity_{r}" for r in np.unique(rec.regions)} <= set(layer.features)
    np.testing.assert_array_equal(layer.features["cluster"].to_numpy(dtype=int), result.cluster)
    rows = np.array([0, 7, 21, 42, 59])
    shown = layer_roi_colors(layer, rows)
    expected = np.array([widget.colors.legend[str(c)] for c in result.cluster[rows]])
    np.testing.assert_allclose(shown, expected, atol=1 / 255)
    assert layer.metadata["poco_color_by"] == "cluster" and "cluster" in widget.legend.text()
    scatter = sorted(c.getRgb() for c in widget.umap.group_colors())
    legend = sorted(tuple(int(round(255 * v)) for v in c) for c in widget.colors.legend.values())
    assert scatter == legend


def test_heatmap_row_click_paints_by_similarity_to_that_region(dock, qtbot):
    widget, _, layer, _ = dock
    names = widget.heatmap.names
    with qtbot.waitSignal(widget.painted, timeout=5000) as blocker:
        widget.heatmap.row_clicked.emit(1)
    column = f"similarity_{names[1]}"
    assert blocker.args == [column] and layer.metadata["poco_color_by"] == column
    assert widget.colors.clim is not None and widget.colorbar.isVisibleTo(widget)
    best, worst = np.nanargmax(layer.features[column]), np.nanargmin(layer.features[column])
    assert not np.allclose(layer_roi_colors(layer, [best]), layer_roi_colors(layer, [worst]))


def test_scatter_picks_select_rois_and_roi_selection_rings_points(dock, qtbot):
    widget, _, _, rec = dock
    sel = selection_for(rec)
    with qtbot.waitSignal(sel.changed, timeout=5000):
        widget.umap.rows_picked.emit(np.array([3, 5]), False)
    assert sel.indices == (3, 5)
    widget.umap.rows_picked.emit(np.array([9]), True)
    assert sel.indices == (3, 5, 9)
    sel.set([11])
    np.testing.assert_array_equal(widget.selected_rows(), [11])
    np.testing.assert_allclose(widget.umap.rings.getData()[0], widget.result.umap[11, 0])
