"""Opening every format through napari's own reader path."""
from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels, Points
from napari.utils.notifications import notification_manager

from poco_core.data.recording import Recording

PLUGIN = "poco-napari"

FEATURES = ["roi_id", "region", "mean", "std", "snr"]
# format -> (has anatomy, ROI layer type, recordings)
EXPECTED = {
    "poco-h5": (True, Labels, 1), "suite2p": (True, Labels, 1), "triplett": (False, Points, 1),
    "nwb": (True, Labels, 1), "caiman": (True, Labels, 1), "npy": (False, Points, 1),
    "npz": (False, Points, 1), "csv": (False, Points, 1), "manifest": (True, Labels, 4),
}


@pytest.mark.parametrize("fmt", list(EXPECTED))
def test_open_each_format(make_napari_viewer, format_files, fmt):
    viewer = make_napari_viewer()
    viewer.open(str(format_files[fmt]), plugin=PLUGIN)
    anatomy, roi_type, n_recs = EXPECTED[fmt]
    rois = [layer for layer in viewer.layers if isinstance(layer, (Labels, Points))]
    assert len(rois) == n_recs and all(isinstance(layer, roi_type) for layer in rois)
    assert sum(isinstance(layer, Image) for layer in viewer.layers) == (n_recs if anatomy else 0)
    for layer in rois:
        rec = layer.metadata["poco_recording"]
        assert isinstance(rec, Recording)
        assert [c for c in layer.features.columns if c in FEATURES] == FEATURES
        assert {k for k in rec.roi_info if k != "snr"} <= set(layer.features.columns)  # iscell, accepted...
        assert layer.features["roi_id"].tolist() == rec.roi_ids.tolist()
        np.testing.assert_allclose(layer.features["mean"], np.asarray(rec.traces).mean(0), rtol=1e-4, atol=1e-4)
    # recordings side by side, not on top of each other
    assert len({layer.translate[-1] for layer in rois}) == n_recs


def test_layers_share_the_recording_object(make_napari_viewer, sample_path):
    viewer = make_napari_viewer()
    viewer.open(str(sample_path), plugin=PLUGIN)
    image, labels = viewer.layers
    assert image.metadata["poco_recording"] is labels.metadata["poco_recording"]
    rec = labels.metadata["poco_recording"]
    assert labels.data.max() == rec.n_rois and labels.features["index"].tolist() == list(range(1, rec.n_rois + 1))


@pytest.mark.parametrize("content", [b"", b"\x89HDF\r\n\x1a\ntruncated", b"not,a\nnumber,table\n"])
def test_broken_file_notifies_and_napari_keeps_running(make_napari_viewer, tmp_path, content):
    viewer = make_napari_viewer()
    path = tmp_path / "broken.h5"
    path.write_bytes(content)
    seen = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        viewer.open(str(path), plugin=PLUGIN)
    finally:
        notification_manager.notification_ready.disconnect(seen.append)
    assert len(viewer.layers) == 0
    assert any("broken.h5" in n.message and "could not open" in n.message for n in seen)


def test_sample_data(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "recording")
    assert [type(layer) for layer in viewer.layers] == [Image, Labels]
    viewer.open_sample(PLUGIN, "cohort")
    assert sum(isinstance(layer, Labels) for layer in viewer.layers) == 5
