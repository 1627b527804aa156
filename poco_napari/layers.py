"""A Recording as napari layer data: anatomy Image + ROIs (Labels or Points) with a features table.

Both layers carry ``metadata={"poco_recording": rec}`` (the object, not a copy) so widgets can
find the traces. The features table (``roi_id, region, mean, std, snr`` and the reader's per-ROI
information, e.g. suite2p ``iscell, iscell_prob, npix`` or CaImAn ``accepted``; Labels also
``index``, the label value of each row) is the contract with analysis and display: widgets add columns
(``cluster``, ``similarity``) and :func:`poco_napari.colors.paint_rois` paints from any of them.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pandas as pd

from poco_core.data.recording import Recording
from poco_napari.colors import (
    default_color_column,
    direct_colormap,
    marked_colors,
    roi_colors,
)
from poco_napari.store import RECORDING_KEY

LayerData = tuple[Any, dict, str]
STATS_BUDGET = 20_000_000  # trace values read for the statistics; larger recordings are sampled
CHUNK_VALUES = 4_000_000  # values per chunk read from disk (~16 MB float32)
POINT_SIZE = 8


def frame_chunks(n_frames: int, n_rois: int, budget: int | None = None) -> Iterator[tuple[int, int]]:
    """(start, stop) frame ranges of bounded size; with a ``budget`` of values, evenly spaced
    contiguous blocks covering about that many values instead of the whole recording."""
    step = max(2, CHUNK_VALUES // max(n_rois, 1))
    if budget is None or n_frames * n_rois <= budget:
        starts = range(0, n_frames, step)
    else:
        n_blocks = max(1, budget // (step * max(n_rois, 1)))
        starts = np.linspace(0, n_frames - step, n_blocks).astype(int)
    for t0 in starts:
        yield int(t0), int(min(t0 + step, n_frames))


def trace_stats(traces: Any) -> pd.DataFrame:
    """Per-ROI mean, std and SNR (std over the noise std estimated from frame-to-frame
    differences), read in chunks; very long recordings are estimated from a sample of blocks."""
    n_frames, n_rois = traces.shape
    total = np.zeros(n_rois)
    total_sq = np.zeros(n_rois)
    diff_sq = np.zeros(n_rois)
    count = n_diffs = 0
    for t0, t1 in frame_chunks(n_frames, n_rois, STATS_BUDGET):
        x = np.asarray(traces[t0:t1], dtype=np.float64)
        total += x.sum(axis=0)
        total_sq += (x * x).sum(axis=0)
        diff_sq += (np.diff(x, axis=0) ** 2).sum(axis=0)
        count += len(x)
        n_diffs += len(x) - 1
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(total_sq / max(count, 1) - mean * mean, 0.0))
    noise = np.sqrt(diff_sq / max(n_diffs, 1) / 2.0)
    snr = np.divide(std, noise, out=np.zeros(n_rois), where=noise > 0)
    return pd.DataFrame({"mean": mean, "std": std, "snr": snr})


def roi_features(rec: Recording) -> pd.DataFrame:
    """The features table of a recording's ROIs, one row per ROI in recording order."""
    regions = rec.regions if rec.regions is not None else np.full(rec.n_rois, "unassigned")
    stats = trace_stats(rec.traces)
    if "snr" in rec.roi_info:  # the pipeline's own estimate beats ours
        stats["snr"] = np.asarray(rec.roi_info["snr"], dtype=float)
    info = {name: np.asarray(values) for name, values in rec.roi_info.items()
            if name != "snr" and np.ndim(values) == 1 and len(values) == rec.n_rois}  # iscell, iscell_prob, accepted...
    return pd.concat([pd.DataFrame({"roi_id": rec.roi_ids, "region": pd.Categorical(regions)}), stats,
                      pd.DataFrame(info)], axis=1)


def grid_positions(n: int, spacing: float = 2 * POINT_SIZE) -> np.ndarray:
    """(n, 2) (y, x) positions on a square grid, in ROI order row by row."""
    cols = max(1, int(np.ceil(np.sqrt(n))))
    i = np.arange(n)
    return np.stack([i // cols, i % cols], axis=1).astype(float) * spacing


def _base_meta(rec: Recording, name: str, role: str, translate: tuple[float, float]) -> dict:
    return {"name": name, "metadata": {RECORDING_KEY: rec, "poco_role": role}, "translate": translate}


def recording_layers(rec: Recording, translate: tuple[float, float] = (0.0, 0.0)) -> list[LayerData]:
    """Anatomy Image (when present) and ROI Labels (footprints) or Points (centroids), the
    ROIs coloured by region, or one colour per ROI when there are no regions. ``translate`` places the recording in world (y, x) pixels."""
    label = rec.session if rec.dataset in ("", "default") else f"{rec.dataset}/{rec.session}"
    layers: list[LayerData] = []
    if rec.anatomy is not None:
        movie = getattr(rec.anatomy, "ndim", 2) == 3
        meta = _base_meta(rec, f"{label} anatomy", "anatomy", translate)
        meta.update(colormap="gray", blending="additive")
        if movie:
            meta["translate"] = (0.0, *translate)
        layers.append((rec.anatomy, meta, "image"))
    features = roi_features(rec)
    color_by = default_color_column(features)
    colors = roi_colors(features[color_by], categorical=True).colors
    labels = rec.label_image()
    if labels is not None:
        features.insert(0, "index", np.arange(1, rec.n_rois + 1))
        meta = _base_meta(rec, f"{label} ROIs", "rois", translate)
        meta["metadata"].update(poco_color_by=color_by, poco_base_colors=colors)
        meta.update(features=features, opacity=0.6,
                    colormap=direct_colormap(features["index"], marked_colors(features, colors)))
        layers.append((labels, meta, "labels"))
        return layers
    centroids = rec.roi_centroids()
    name = f"{label} ROIs"
    if centroids is None:  # traces only: a grid, so the ROIs can still be clicked and coloured
        centroids, name = grid_positions(rec.n_rois), f"{label} ROIs (no positions in file: grid)"
    meta = _base_meta(rec, name, "rois", translate)
    meta["metadata"].update(poco_color_by=color_by, poco_base_colors=colors)
    meta.update(features=features, face_color=marked_colors(features, colors), size=POINT_SIZE, border_width=0,
                opacity=0.8)
    layers.append((centroids, meta, "points"))
    return layers



def layers_width(layers: list[LayerData]) -> float:
    """Width in pixels (x) that these layers cover, to place the next recording beside them."""
    widths = [data.shape[-1] if kind in ("image", "labels") else float(np.max(data[:, 1], initial=0)) + POINT_SIZE
              for data, _, kind in layers]
    return max(widths, default=0.0)
