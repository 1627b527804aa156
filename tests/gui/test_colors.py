"""One colouring function for Labels and Points."""
from __future__ import annotations

import numpy as np
import pandas as pd
from napari.layers import Labels, Points

from poco_napari.colors import TAB10, layer_roi_colors, paint_rois, roi_colors

RED, BLUE = (1.0, 0.0, 0.0, 1.0), (0.0, 0.0, 1.0, 1.0)


def _layers(n: int = 4):
    labels = np.arange(n, dtype=np.int32).reshape(1, n) + 1
    features = pd.DataFrame({"index": np.arange(1, n + 1), "cluster": [0, 1, 0, 1][:n],
                             "similarity": np.linspace(0, 1, n)})
    return Labels(labels, features=features), Points(np.c_[np.zeros(n), np.arange(n)], features=features)


def test_categorical_same_colours_on_labels_and_points():
    for layer in _layers():
        result = paint_rois(layer, "cluster")
        shown = layer_roi_colors(layer)
        np.testing.assert_allclose(shown, result.colors, atol=1e-6)
        np.testing.assert_allclose(shown[0], shown[2])
        assert set(result.legend) == {"0", "1"}
        assert layer.metadata["poco_color_by"] == "cluster"
    tab_blue = np.array([int(TAB10[0][i:i + 2], 16) / 255 for i in (1, 3, 5)])
    np.testing.assert_allclose(result.legend["0"][:3], tab_blue, atol=1e-6)


def test_continuous_uses_colormap_over_clim():
    result = roi_colors([0.0, 0.5, 1.0, np.nan], colormap="gray", clim=(0.0, 1.0))
    np.testing.assert_allclose(result.colors[0, :3], 0.0, atol=1e-6)
    np.testing.assert_allclose(result.colors[2, :3], 1.0, atol=1e-6)
    np.testing.assert_allclose(result.colors[1, :3], 0.5, atol=0.01)
    assert result.colors[3, 0] == result.colors[3, 1] == result.colors[3, 2]  # missing: grey
    assert result.legend == {} and result.clim == (0.0, 1.0)


def test_labels_colormap_without_image_rebuild():
    labels, points = _layers()
    data = labels.data
    paint_rois(labels, "similarity", colormap="viridis")
    assert labels.data is data
    assert not np.allclose(layer_roi_colors(labels)[0], layer_roi_colors(labels)[-1])


def test_80k_rois_painted_without_rebuilding_the_label_image():
    """Whole-brain scale: every ROI gets its colour and the label image is never touched
    (the time it takes is measured by benchmarks/bench_paint.py, not asserted here)."""
    n = 80_000
    labels = np.arange(n, dtype=np.int32).reshape(200, 400) + 1
    layer = Labels(labels, features={"index": np.arange(1, n + 1), "region": np.arange(n) % 7,
                                     "snr": np.random.default_rng(0).random(n)})
    data_before = layer.data
    result = paint_rois(layer, "region")
    assert layer.data is data_before
    shown = layer_roi_colors(layer, [0, 7, n - 1])
    np.testing.assert_allclose(shown[0], shown[1], atol=1 / 255)  # same region -> same colour
    np.testing.assert_allclose(shown, result.colors[[0, 7, n - 1]], atol=1 / 255)
    mapped = layer.colormap.map(np.array([1, 8, n], dtype=np.int32))
    np.testing.assert_allclose(mapped, result.colors[[0, 7, n - 1]], atol=1 / 255)