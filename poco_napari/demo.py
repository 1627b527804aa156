"""`make demo`: napari with every POCO Studio dock and the sample recording loaded.

`python -m poco_napari.demo [--headless] [--screenshot PNG]`. With --headless it runs the engine's
demo instead (train a small POCO on the sample cohort, print its score vs copy) without Qt.
"""
from __future__ import annotations

import argparse

PLUGIN = "poco-napari"
DOCKS = ("Traces", "Preprocessing", "Training", "Finetuning", "Embeddings", "Live")


def open_viewer(docks: tuple[str, ...] = DOCKS):
    """A napari viewer with the sample recording and the plugin's docks (returned for tests/screens)."""
    import napari

    from poco_napari.selection import selection_for
    from poco_napari.store import recordings_in

    viewer = napari.Viewer(title="POCO Studio")
    viewer.window.resize(1800, 1100)
    viewer.open_sample(PLUGIN, "recording")
    added = [viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=i > 1)[0] for i, name in enumerate(docks)]
    # Traces stands alone; the other docks share one tabbed area beside it, opened at the first step
    if len(added) > 1:
        from qtpy.QtCore import QTimer

        QTimer.singleShot(0, added[1].raise_)  # tabs settle once the window is shown
    recs = recordings_in(viewer)
    if recs:  # show a few traces straight away, one ROI from each end of the recording
        selection_for(recs[0]).set([0, recs[0].n_rois // 2, recs[0].n_rois - 1])
    return viewer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m poco_napari.demo", description=__doc__)
    parser.add_argument("--headless", action="store_true", help="train on the sample cohort without a GUI")
    parser.add_argument("--steps", type=int, default=300, help="training steps for --headless")
    parser.add_argument("--screenshot", help="save a screenshot of the window to this PNG and quit")
    args = parser.parse_args(argv)
    if args.headless:
        from poco_core.demo import run

        run(steps=args.steps)
        return 0
    import napari

    viewer = open_viewer()
    if args.screenshot:
        from qtpy.QtCore import QTimer

        def shoot() -> None:
            viewer.screenshot(args.screenshot, canvas_only=False)
            viewer.close()

        QTimer.singleShot(1500, shoot)
    napari.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
