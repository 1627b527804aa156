"""Screenshot of the Live panel following the sample recording, with units picked in the viewer.

    xvfb-run -a python scripts/screenshot_live.py CHECKPOINT.pt docs/screenshots/live_napari.png

Replays the sample recording into an in-process LiveRecording at its own rate, with the
checkpoint's model (the recording is a new animal for it: fresh embeddings), selects three ROIs
the way a click would, and saves the window once forecasts are on screen.
"""
from __future__ import annotations

import sys

import numpy as np


def main(checkpoint: str, out: str, frames: int = 250) -> None:
    import napari
    from qtpy.QtCore import QTimer

    from poco_core.live import LiveRecording
    from poco_core.training.restore import load_model
    from poco_napari.demo import open_viewer
    from poco_napari.selection import selection_for
    from poco_napari.store import recordings_in

    viewer = open_viewer(("Live",))
    rec = recordings_in(viewer)[0]
    panel = viewer.window.dock_widgets["Live (poco-napari)"]
    panel.raise_()
    source = LiveRecording(rec.n_rois, rec.fs, roi_ids=rec.roi_ids)
    panel.connect_source(source, load_model(checkpoint))
    traces = np.asarray(rec.traces[:frames])
    state = {"sent": 0}

    def feed() -> None:
        if state["sent"] < frames:
            source.append(traces[state["sent"]: state["sent"] + 1])
            state["sent"] += 1
            if state["sent"] == 100:
                selection_for(rec).set([12, 140, 201])  # as if clicked in the viewer
            return
        timer.stop()
        QTimer.singleShot(1000, shoot)

    def shoot() -> None:
        viewer.screenshot(out, canvas_only=False)
        panel.disconnect_source()
        viewer.close()

    timer = QTimer(interval=int(1000 / rec.fs))
    timer.timeout.connect(feed)
    timer.start()
    napari.run()


if __name__ == "__main__":
    main(*sys.argv[1:3])
