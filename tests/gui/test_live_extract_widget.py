"""The Live panel follows raw TIFF frames plus a segmentation: it registers and extracts in its worker thread."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from qtpy.QtCore import Qt

from poco_core.data.io import load_recording
from poco_napari.live_widget import LiveWidget

SIM = Path(__file__).resolve().parents[1] / "data" / "suite2p_sim"


def test_panel_extracts_traces_from_a_tiff_folder(make_napari_viewer, qtbot, tmp_path):
    movie = tifffile.imread(SIM / "movie.tif")
    frames = tmp_path / "frames"
    frames.mkdir()
    tifffile.imwrite(frames / "f_000.tif", movie[:40], photometric="minisblack")
    viewer = make_napari_viewer()
    panel = LiveWidget(viewer)
    viewer.window.add_dock_widget(panel)
    panel.source_edit.setText(str(frames))
    panel.rois_edit.setText(str(SIM / "suite2p"))
    with qtbot.waitSignal(panel.drawn, timeout=30000, check_params_cb=lambda last, _: last >= 39):
        qtbot.mouseClick(panel.connect_btn, Qt.LeftButton)
    text = panel.extract_label.text()
    assert "frame shift dy" in text and "frames/s" in text and "frames_extracted.h5" in text
    with qtbot.waitSignal(panel.drawn, timeout=30000, check_params_cb=lambda last, _: last >= 59):
        tifffile.imwrite(frames / "f_001.tif", movie[40:60], photometric="minisblack")
    assert panel.session.source.n_frames == 60
    panel.disconnect_source()
    out = load_recording(tmp_path / "frames_extracted.h5")
    assert out.n_frames == 60 and out.n_rois == 53 and "Fneu" in out.extra_traces


def test_panel_reports_a_frame_size_mismatch(make_napari_viewer, qtbot, tmp_path):
    tifffile.imwrite(tmp_path / "small.tif", np.zeros((5, 32, 48), np.uint16), photometric="minisblack")
    viewer = make_napari_viewer()
    panel = LiveWidget(viewer)
    viewer.window.add_dock_widget(panel)
    panel.source_edit.setText(str(tmp_path / "small.tif"))
    panel.rois_edit.setText(str(SIM / "suite2p"))
    qtbot.mouseClick(panel.connect_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: "stopped" in panel.status_label.text(), timeout=30000)
    assert "32 x 48 px" in panel.status_label.text() and "128 x 128 px" in panel.status_label.text()


def test_panel_extracts_every_plane_as_one_recording(make_napari_viewer, qtbot, tmp_path):
    """Plane 'all' with a suite2p folder of two planes: each volume's planes extracted with their own ROIs."""
    import shutil

    movie = tifffile.imread(SIM / "movie.tif")
    for k in range(2):
        shutil.copytree(SIM / "suite2p" / "plane0", tmp_path / "suite2p" / f"plane{k}")
    frames = tmp_path / "frames"
    frames.mkdir()
    tifffile.imwrite(frames / "f_000.tif", np.repeat(movie[:20], 2, axis=0), photometric="minisblack")  # 20 volumes
    viewer = make_napari_viewer()
    panel = LiveWidget(viewer)
    viewer.window.add_dock_widget(panel)
    panel.source_edit.setText(str(frames))
    panel.rois_edit.setText(str(tmp_path / "suite2p"))
    panel.plane_box.setCurrentText("all")
    panel.planes_spin.setValue(2)
    with qtbot.waitSignal(panel.drawn, timeout=30000, check_params_cb=lambda last, _: last >= 19):
        qtbot.mouseClick(panel.connect_btn, Qt.LeftButton)
    ids = panel.session.source.roi_ids
    assert len(ids) == 106 and ids[53].startswith("plane1_")
    panel.disconnect_source()
    out = load_recording(tmp_path / "frames_extracted.h5")
    assert out.n_frames == 20 and out.roi_info["plane"].tolist() == [0] * 53 + [1] * 53
    np.testing.assert_allclose(np.asarray(out.traces)[:, :53], np.asarray(out.traces)[:, 53:], rtol=1e-5)
