"""Screenshot of the Live panel extracting traces from raw TIFF frames as they are written, and forecasting.

    xvfb-run -a -s "-screen 0 1920x1080x24" python scripts/screenshot_live_extract.py docs/screenshots/live_extract.png

The real suite2p 1.1.0 fixture (tests/data/suite2p_sim): a small POCO is trained on its F (binned
to 10 Hz, as a rig would train on the first minutes), the fixture's movie is written page by page
into a folder at its 30 Hz, and the Live panel follows that folder with the suite2p segmentation
(registering each frame and extracting F in its worker thread, binning 3 frames into one for the
model), with the viewer showing the same recording and three of its ROIs selected.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIM = REPO / "tests" / "data" / "suite2p_sim"
TINY = {"d_model": 16, "hidden": 32, "n_latents": 4, "cross_head_dim": 8, "self_attn_heads": 2, "self_attn_head_dim": 8}


def write_movie(folder: str) -> None:
    """The writer, in its own process as at a rig: the fixture's movie, page by page at 30 Hz."""
    import tifffile

    from poco_core.data.movie import write_tiff_frames

    write_tiff_frames(((f, None) for f in tifffile.imread(SIM / "movie.tif")), folder, 30.0, 100)


def main(out: str) -> None:
    import multiprocessing as mp

    import napari

    from qtpy.QtCore import QTimer

    from poco_core.data.io import load_recording
    from poco_core.data.preprocess import PreprocessConfig
    from poco_core.training.restore import load_model
    from poco_core.training.train import train
    from poco_napari.selection import selection_for
    from poco_napari.store import recordings_in

    work = Path(tempfile.mkdtemp(prefix="poco-shot-"))
    rec = load_recording(SIM / "suite2p")
    train([rec], "poco", model_config=TINY, context=16, horizon=5, steps=150, batch_size=16, lr=1e-3, val_every=50,
          device="cpu", preprocess=PreprocessConfig(target_fs=10.0, block_len=133), checkpoint=work / "m.pt").wait()
    viewer = napari.Viewer(title="POCO Studio: live extraction from TIFF frames (suite2p 1.1.0 segmentation)")
    viewer.window._qt_window.resize(1920, 1080)
    viewer.open(str(SIM / "suite2p"), plugin="poco-napari")
    shown = recordings_in(viewer)[0]
    panel = viewer.window.add_plugin_dock_widget("poco-napari", "Live")[1]
    frames = work / "frames"
    mp.get_context("spawn").Process(target=write_movie, args=(str(frames),), daemon=True).start()
    panel.source_edit.setText(str(frames))
    panel.rois_edit.setText(str(SIM / "suite2p"))
    panel.checkpoint_edit.setText(str(work / "m.pt"))
    load_model(work / "m.pt")  # fail here, not in the panel, if the checkpoint is unusable

    def connect() -> None:
        if not frames.exists() or not any(frames.iterdir()):
            QTimer.singleShot(200, connect)  # the writer process is still starting
            return
        panel.connect_source()
        selection_for(shown).set([2, 17, 30])  # as if clicked in the viewer
        QTimer.singleShot(10000, shoot)  # about 300 frames in

    def shoot() -> None:
        viewer.screenshot(out, canvas_only=False)
        panel.disconnect_source()
        viewer.close()

    QTimer.singleShot(200, connect)
    napari.run()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(REPO / "docs" / "screenshots" / "live_extract.png"))
