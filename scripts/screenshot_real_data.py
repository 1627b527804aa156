"""Screenshots of the GUI on the real suite2p 1.1.0 fixture (tests/data/suite2p_sim), for the README.

    xvfb-run -a -s "-screen 0 1920x1080x24" python scripts/screenshot_real_data.py docs/screenshots

Writes ``suite2p_rois.png`` (a colour per ROI), ``suite2p_cells.png`` (non-cells greyed, outlines),
``suite2p_traces.png`` (selected traces and the raster on a time axis in seconds),
``suite2p_results.png`` (a small POCO trained here, its test scores beside the copy, mean and
smoothed-copy baselines, all as the engine's evaluation reports them) and ``suite2p_window.png``
(the whole window at 1920x1080, every dock open).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SUITE2P = REPO / "tests" / "data" / "suite2p_sim" / "suite2p"
TINY = {"d_model": 16, "hidden": 32, "n_latents": 4, "cross_head_dim": 8, "self_attn_heads": 2, "self_attn_head_dim": 8}
STEPS = 300
SELECTED = [2, 17, 26]  # two cells and a non-cell (ROI 26: iscell False)


def train_small(rec, out: Path):
    """A small POCO on the fixture and its test metrics (the engine's, baselines and diagnosis included)."""
    from poco_core.analysis.evaluate import evaluate
    from poco_core.data.preprocess import PreprocessConfig, prepare
    from poco_core.training.restore import load_model
    from poco_core.training.train import train_events

    config = PreprocessConfig(block_len=200)
    events = list(train_events([rec], model="poco", model_config=TINY, context=24, horizon=8, steps=STEPS,
                               batch_size=16, lr=1e-3, val_every=25, device="cpu", preprocess=config, checkpoint=out,
                               sample_rois={rec.session: [str(rec.roi_ids[i]) for i in SELECTED]}))
    model = load_model(out)
    sessions = evaluate(model, prepare([rec], config), "test", device="cpu").to_dict()["sessions"]
    return model, sessions, events


def cropped(rgba: np.ndarray) -> np.ndarray:
    """The canvas without its black margins."""
    lit = rgba[..., :3].max(axis=2) > 8
    rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    return rgba[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def captioned(panels: list[tuple[np.ndarray, str]], gap: int = 12, band: int = 34):
    """Panels side by side, each with a caption above it (a QImage)."""
    from qtpy.QtCore import Qt
    from qtpy.QtGui import QColor, QFont, QImage, QPainter

    height = max(p.shape[0] for p, _ in panels) + band
    width = sum(p.shape[1] for p, _ in panels) + gap * (len(panels) - 1)
    image = QImage(width, height, QImage.Format.Format_RGBA8888)
    image.fill(QColor("#262930"))
    painter = QPainter(image)
    painter.setPen(QColor("#f0f1f2"))
    painter.setFont(QFont("DejaVu Sans", 13))
    x = 0
    for rgba, text in panels:
        data = np.ascontiguousarray(rgba[..., :4])
        panel = QImage(data.data, data.shape[1], data.shape[0], data.strides[0], QImage.Format.Format_RGBA8888)
        painter.drawImage(x, band, panel)
        painter.drawText(x, 0, data.shape[1], band, int(Qt.AlignmentFlag.AlignCenter), text)
        x += data.shape[1] + gap
    painter.end()
    return image


def save_rgba(image, path: Path) -> None:
    """Save an RGBA array or a QImage as PNG."""
    if isinstance(image, np.ndarray):
        from qtpy.QtGui import QImage

        data = np.ascontiguousarray(image[..., :4])
        image = QImage(data.data, data.shape[1], data.shape[0], data.strides[0], QImage.Format.Format_RGBA8888).copy()
    image.save(str(path))


def main(out_dir: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import napari
    import torch
    from qtpy.QtWidgets import QApplication

    from poco_napari.job_docks import docks_for
    from poco_napari.results_table import ResultsDock
    from poco_napari.selection import selection_for
    from poco_napari.traces import TracesWidget

    torch.set_num_threads(1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication([])

    def settle(n: int = 20) -> None:
        for _ in range(n):
            app.processEvents()

    viewer = napari.Viewer(title="POCO Studio: suite2p 1.1.0 run (53 ROIs, 30 Hz)")
    viewer.window._qt_window.showMaximized()
    viewer.window._qt_window.resize(1920, 1080)
    viewer.open(str(SUITE2P), plugin="poco-napari")
    rois = next(layer for layer in viewer.layers if layer.metadata.get("poco_role") == "rois")
    rec = rois.metadata["poco_recording"]
    docks = {name: viewer.window.add_plugin_dock_widget("poco-napari", name, tabify=i > 1)[1]
             for i, name in enumerate(("Traces", "Preprocessing", "Training", "Finetuning", "Embeddings", "Live"))}
    docks["Preprocessing"].parent().raise_()
    settle()
    viewer.reset_view()
    settle()
    everything = cropped(viewer.screenshot(canvas_only=True))
    save_rgba(everything, out / "suite2p_rois.png")
    n_cells = int(rois.features["iscell"].sum())
    panels = [(everything, f"all {rec.n_rois} suite2p ROIs, a colour each")]
    for mode, text in (("grey", f"{rec.n_rois - n_cells} non-cells greyed (iscell False)"),
                       ("hide", f"non-cells hidden: the {n_cells} cells")):
        docks["Traces"].non_cells.setCurrentText(mode)
        settle()
        panels.append((cropped(viewer.screenshot(canvas_only=True)), text))
    save_rgba(captioned(panels), out / "suite2p_cells.png")
    docks["Traces"].non_cells.setCurrentText("grey")
    selection_for(rec).set(SELECTED)
    traces = TracesWidget(viewer)  # on its own, large enough to read
    traces.resize(1400, 650)
    traces.show()
    traces.non_cells.setCurrentText("grey")
    traces.sort_box.setCurrentText("iscell")
    settle(30)
    traces.grab().save(str(out / "suite2p_traces.png"))
    traces.close()

    with tempfile.TemporaryDirectory() as tmp:
        model, sessions, events = train_small(rec, Path(tmp) / "poco.pt")
        job_docks = docks_for(viewer)
        job_docks.forecast.fs = {rec.session: float(rec.fs)}
        job_docks.add_events(events)
        job_docks.results.model = "poco"
        job_docks.results.show_scores(sessions, "test")
        job_docks.results.errors.show_metrics(sessions)
        job_docks.show_model(model, rec)
        job_docks.forecast.scrub(300)
        docks["Preprocessing"].parent().raise_()
        settle(40)
        viewer.reset_view()
        settle(10)
        viewer.window._qt_window.grab().save(str(out / "suite2p_window.png"))
        results = ResultsDock()  # on its own, wide enough for every column
        results.model = "poco"
        results.apply_theme(viewer.theme)
        results.show_scores(sessions, "test")
        results.errors.show_metrics(sessions)
        results.resize(1500, 300)
        results.show()
        settle(20)
        results.grab().save(str(out / "suite2p_results.png"))
        results.close()
    hint = viewer.window._qt_window.minimumSizeHint()
    print(f"window minimum size {hint.width()}x{hint.height()}; wrote {sorted(p.name for p in out.glob('suite2p_*.png'))}")
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(REPO / "docs" / "screenshots"))
