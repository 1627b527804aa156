"""NWB optical physiology via pynwb: a RoiResponseSeries under processing['ophys'].

Interfaces are found by type, not name. Mask convention: ``image_mask`` is (ROI, x, y) with x
the first (row) axis, and ``pixel_mask`` x is likewise the row -- which is what suite2p's NWB
writer stores -- so both give the same footprints.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from hdmf.common import VectorIndex
from pynwb import NWBHDF5IO
from pynwb.base import Images
from pynwb.ophys import DfOverF, Fluorescence, RoiResponseSeries

from poco_core.base.errors import CorruptFile, RecordingError
from poco_core.data.io.arrays import h5_traces
from poco_core.data.recording import Recording

PLACEHOLDER_LOCATIONS = {"", "unknown", "none", "n/a", "na"}


def _series_choices(ophys) -> list[tuple[str, RoiResponseSeries]]:
    """All RoiResponseSeries as ("Interface/series", series): Fluorescence first, then other
    Fluorescence-type interfaces (suite2p's Neuropil/Deconvolved), then DfOverF."""
    ranked = []
    for iface in ophys.data_interfaces.values():
        if isinstance(iface, (Fluorescence, DfOverF)):
            rank = 2 if isinstance(iface, DfOverF) else (0 if iface.name == "Fluorescence" else 1)
            for s in iface.roi_response_series.values():
                ranked.append((rank, f"{iface.name}/{s.name}", s))
    return [(label, s) for _, label, s in sorted(ranked, key=lambda r: r[0])]


def _pick(choices: list[tuple[str, RoiResponseSeries]], series: str | None, path: Path) -> tuple[str, RoiResponseSeries]:
    labels = [label for label, _ in choices]
    if not choices:
        raise RecordingError(path, "no RoiResponseSeries in processing['ophys'] Fluorescence/DfOverF")
    if series is None:
        return choices[0]
    hits = [c for c in choices if series in (c[0], c[1].name, c[0].split("/")[0])]
    if len(hits) != 1:
        why = "ambiguous" if hits else "not found"
        raise RecordingError(path, f"series {series!r} {why}; choose one of {labels}")
    return hits[0]


def _fs(s: RoiResponseSeries, n_frames: int, path: Path) -> tuple[float, list[str]]:
    if s.rate is not None:
        return float(s.rate), []
    ts = np.asarray(s.timestamps[:], dtype=float) if s.timestamps is not None else np.zeros(0)
    if len(ts) < 2:
        raise CorruptFile(path, f"series {s.name} has neither a rate nor usable timestamps")
    dt = np.diff(ts)
    step = float(np.median(dt))
    if step <= 0:
        raise CorruptFile(path, f"series {s.name} timestamps do not increase")
    warnings = []
    if np.max(np.abs(dt - step)) > 0.01 * step:
        warnings.append(f"irregular timestamps in {s.name}; fs from the median interval ({1 / step:.4g} Hz)")
    if len(ts) != n_frames:
        warnings.append(f"{len(ts)} timestamps for {n_frames} frames in {s.name}")
    return 1.0 / step, warnings


def _reference_image(ophys) -> np.ndarray | None:
    """A 2-D mean image from an Images container in ophys (suite2p's Backgrounds_0/meanImg), if any."""
    images = [img for iface in ophys.data_interfaces.values() if isinstance(iface, Images) for img in iface.images.values()]
    images = [img for img in images if np.ndim(img.data) == 2]
    images.sort(key=lambda img: "mean" not in img.name.lower())
    return np.asarray(images[0].data[:], dtype=np.float32) if images else None


def _footprints(table, idx: np.ndarray, shape: tuple[int, int] | None) -> tuple[sp.csr_matrix | None, tuple | None, list[str]]:
    if "image_mask" in table.colnames:
        masks = table["image_mask"].data
        rows = [sp.csr_matrix(np.asarray(masks[int(i)], dtype=np.float32).reshape(1, -1)) for i in idx]
        return sp.vstack(rows, format="csr"), tuple(masks.shape[1:]), []
    if "pixel_mask" not in table.colnames:
        return None, shape, []
    index = table["pixel_mask"]
    ends = np.asarray(index.data[:], dtype=np.int64)
    pix = index.target.data[:]
    starts = np.concatenate([[0], ends[:-1]])
    parts = [pix[starts[i]:ends[i]] for i in idx]
    row = np.concatenate([p["x"] for p in parts]).astype(np.int64)
    col = np.concatenate([p["y"] for p in parts]).astype(np.int64)
    warnings = []
    if shape is None:
        shape = (int(row.max()) + 1, int(col.max()) + 1) if len(row) else (1, 1)
        warnings.append("no reference image; field of view size guessed from the pixel masks")
    owner = np.repeat(np.arange(len(idx)), [len(p) for p in parts])
    weight = np.concatenate([p["weight"] for p in parts]).astype(np.float32)
    return sp.csr_matrix((weight, (owner, row * shape[1] + col)), shape=(len(idx), shape[0] * shape[1])), shape, warnings


def _roi_info(table, idx: np.ndarray) -> dict:
    info = {}
    for name in table.colnames:
        col = table[name]
        if name in ("image_mask", "pixel_mask", "voxel_mask") or isinstance(col, VectorIndex):
            continue
        values = np.asarray(col.data[:])
        if values.dtype.kind not in "biuf" or len(values) != len(table):
            continue
        if values.ndim == 1:
            info[name] = values[idx]
        elif values.ndim == 2 and name == "iscell":  # suite2p: (flag, probability)
            info["iscell"], info["iscell_prob"] = values[idx, 0].astype(bool), values[idx, 1]
    return info


def read_nwb(path: Path, series: str | None = None, lazy: bool | None = None) -> Recording:
    """The chosen series (default: first Fluorescence, else DfOverF); same-ROI series go to extra_traces."""
    try:
        with NWBHDF5IO(str(path), "r") as io:
            return _read(io.read(), path, series, lazy)
    except RecordingError:
        raise
    except Exception as exc:  # pynwb/hdmf raise many types for malformed files; name the file instead
        raise CorruptFile(path, f"cannot read as NWB ({type(exc).__name__}: {exc})") from exc


def _read(nwb, path: Path, series: str | None, lazy: bool | None) -> Recording:
    if "ophys" not in nwb.processing:
        raise RecordingError(path, "NWB file has no processing['ophys'] module")
    ophys = nwb.processing["ophys"]
    choices = _series_choices(ophys)
    label, s = _pick(choices, series, path)
    if len(s.data.shape) != 2:
        raise CorruptFile(path, f"series {label} has shape {s.data.shape}, expected (frames, ROIs)")
    table, idx = s.rois.table, np.asarray(s.rois.data[:], dtype=np.int64)
    if len(idx) != s.data.shape[1]:
        raise CorruptFile(path, f"series {label} has {s.data.shape[1]} ROIs but its rois region lists {len(idx)}")
    fs, warnings = _fs(s, s.data.shape[0], path)
    anatomy = _reference_image(ophys)
    footprints, shape, more = _footprints(table, idx, None if anatomy is None else anatomy.shape)
    if anatomy is not None and shape is not None and anatomy.shape != tuple(shape):
        anatomy = None
    location = str(getattr(table.imaging_plane, "location", "") or "")
    written_by_suite2p = "iscell" in table.colnames and "Neuropil" in ophys.data_interfaces
    regions = None
    if location.strip().lower() not in PLACEHOLDER_LOCATIONS and not written_by_suite2p:
        regions = np.full(len(idx), location)
    extra = {
        other_label: h5_traces(path, o.data, False, lazy)
        for other_label, o in choices
        if o is not s and o.rois.table is table and np.array_equal(o.rois.data[:], idx) and o.data.shape == s.data.shape
    }
    return Recording(
        traces=h5_traces(path, s.data, False, lazy),
        fs=fs,
        roi_ids=np.asarray(table.id.data[:])[idx],
        session=path.stem,
        footprints=footprints,
        anatomy=anatomy,
        regions=regions,
        source=str(path),
        provenance={
            "format": "nwb",
            "series": label,
            "series_choices": [c[0] for c in choices],
            "imaging_plane_location": location,
            "session_id": nwb.session_id,
            "image_shape": shape,
            "warnings": warnings + more,
        },
        extra_traces=extra,
        roi_info=_roi_info(table, idx),
    )
