"""Screenshots of the Circuit dock at 1920x1080 on a real recording and a saved fit.

    poco circuit DATA --out fit.h5 ...            # the fit, headless (or Start in the dock)
    xvfb-run -a -s "-screen 0 1920x1080x24" python scripts/screenshot_circuit.py DATA fit.h5 OUT_PREFIX [ROI ...]

Opens DATA in napari with the Traces and Circuit docks (tabbed, Circuit in front), shows the fit, selects the given ROI indices
(as a click would) and saves OUT_PREFIX_currents.png, OUT_PREFIX_fit.png, OUT_PREFIX_j.png, OUT_PREFIX_rois.png and OUT_PREFIX_grid.png (the tabs).
"""
from __future__ import annotations

import sys


def main(data: str, fit_path: str, prefix: str, rois: list[int]) -> None:
    import napari
    from qtpy.QtCore import QTimer

    from poco_core.analysis.circuit import CircuitFit
    from poco_napari.selection import selection_for
    from poco_napari.store import recordings_in

    viewer = napari.Viewer(title="POCO Studio")
    viewer.open(data, plugin="poco-napari")
    viewer.window.add_plugin_dock_widget("poco-napari", "Traces")
    dock, widget = viewer.window.add_plugin_dock_widget("poco-napari", "Circuit", tabify=True)
    window = viewer.window._qt_window
    widget.show_fit(CircuitFit.load(fit_path))
    rec = recordings_in(viewer)[0]
    selection_for(rec).set(rois or [0, rec.n_rois // 2, rec.n_rois - 1])
    tabs = {widget.tabs.tabText(i): i for i in range(widget.tabs.count())}
    shots = [("currents", tabs["Currents"]), ("fit", tabs["Fit"]), ("j", tabs["J"]), ("rois", tabs["ROIs"]),
             ("grid", tabs["Current grid"])]

    def shoot(k: int = 0) -> None:
        if k == len(shots):
            viewer.close()
            return
        name, tab = shots[k]
        widget.tabs.setCurrentIndex(tab)
        QTimer.singleShot(1500, lambda: (viewer.screenshot(f"{prefix}_{name}.png", canvas_only=False), shoot(k + 1)))

    QTimer.singleShot(0, dock.raise_)
    QTimer.singleShot(500, lambda: window.setGeometry(0, 0, 1920, 1080))  # no window manager under xvfb
    QTimer.singleShot(2500, shoot)
    napari.run()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], [int(a) for a in sys.argv[4:]])
