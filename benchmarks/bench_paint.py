"""How long painting 80,000 ROIs by cluster / by similarity takes in the embedding dock.

Builds a whole-brain-sized recording (80,000 footprints on a 2,000 x 2,000 field of view) as
the reader would (Labels layer) and as centroids (Points layer), feeds the dock an analysis of
that size, and times ``EmbeddingWidget.paint_by`` alone and followed by one canvas redraw. The
label image must not be touched: the script fails if the Labels data object or its data events
change. Run under a display: ``xvfb-run -a python benchmarks/bench_paint.py [n_rois]``.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import scipy.sparse as sp

from poco_core.analysis.embedding import EmbeddingAnalysis
from poco_core.data.recording import Recording

REGIONS = [f"region{k}" for k in range(12)]
CLUSTERS = 10
REPEATS = 5


def whole_brain(n: int, side: int = 7) -> Recording:
    """`n` square ROIs of side x side pixels tiling a square field of view."""
    per_row = int(np.ceil(np.sqrt(n)))
    ly = lx = per_row * side
    y0, x0 = np.divmod(np.arange(n), per_row)
    dy, dx = np.divmod(np.arange(side * side), side)
    cols = ((y0[:, None] * side + dy) * lx + x0[:, None] * side + dx).ravel()
    rows = np.repeat(np.arange(n), side * side)
    footprints = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(n, ly * lx))
    rng = np.random.default_rng(0)
    return Recording(
        traces=rng.normal(size=(20, n)).astype(np.float32), fs=2.0, roi_ids=np.array([f"roi{i}" for i in range(n)]),
        session="brain", footprints=footprints, regions=np.array(REGIONS)[rng.integers(0, len(REGIONS), n)],
        provenance={"image_shape": (ly, lx)},
    )


def analysis_of(rec: Recording) -> EmbeddingAnalysis:
    n, rng = rec.n_rois, np.random.default_rng(1)
    sim = rng.uniform(size=(len(REGIONS), len(REGIONS)))
    return EmbeddingAnalysis(
        session=np.full(n, rec.session), roi_id=rec.roi_ids, region=rec.regions,
        embedding=rng.normal(size=(n, 8)).astype(np.float32), umap=rng.normal(size=(n, 2)).astype(np.float32),
        cluster=rng.integers(0, CLUSTERS, n), method="kmeans", metric="cosine", seed=0, region_names=REGIONS,
        similarity=sim, similarity_raw=sim, roi_similarity=rng.uniform(-1, 1, (n, len(REGIONS))).astype(np.float32),
    )


def timed(fn) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(n: int = 80_000) -> int:
    import napari
    from qtpy.QtWidgets import QApplication

    from poco_napari.embedding_widget import EmbeddingWidget
    from poco_napari.layers import recording_layers

    rec = whole_brain(n)
    viewer = napari.Viewer(show=False)
    (data, meta, _), = recording_layers(rec)
    labels = viewer.add_labels(data, **meta)
    points = viewer.add_points(rec.roi_centroids(), name="centroids", metadata=meta["metadata"],
                               features=meta["features"].drop(columns="index"), size=4)
    widget = EmbeddingWidget(viewer)
    widget.show_result(analysis_of(rec))
    before, data_events = labels.data, []
    labels.events.data.connect(data_events.append)

    def paint_and_draw(column: str) -> None:
        widget.paint_by(column)
        QApplication.processEvents()
        viewer.window._qt_viewer.canvas.native.grabFramebuffer()  # forces one full render

    ly, lx = labels.data.shape
    print(f"{n} ROIs on a {ly} x {lx} label image, Labels + Points layers, median of {REPEATS}:")
    for column in ("cluster", "similarity_region3"):
        print(f"  paint by {column:20s} {timed(lambda: widget.paint_by(column)) * 1e3:7.1f} ms"
              f"   with one redraw {timed(lambda: paint_and_draw(column)) * 1e3:7.1f} ms")
    assert labels.data is before and not data_events, "painting rebuilt the label image"
    assert len(points.features) == n and "similarity_region3" in labels.features
    print("  label image untouched (same array, no data events)")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*(int(a) for a in sys.argv[1:])))
