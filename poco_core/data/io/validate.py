"""Checks every reader's output goes through, and the problem list `poco info` prints."""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from poco_core.base.errors import CorruptFile, InvalidTraces
from poco_core.data.recording import Recording

BLOCK_FRAMES = 4096  # frames scanned at a time, so memory-mapped traces are never loaded whole


def _blocks(traces, n_frames: int):
    for start in range(0, n_frames, BLOCK_FRAMES):
        yield start, np.asarray(traces[start:start + BLOCK_FRAMES], dtype=np.float32)


def nonfinite_summary(traces) -> tuple[np.ndarray, np.ndarray] | None:
    """(frames, ROIs) indices holding NaN/Inf, scanning block by block; None when all finite."""
    bad_frames, bad_rois = [], np.zeros(traces.shape[1], dtype=bool)
    for start, block in _blocks(traces, traces.shape[0]):
        bad = ~np.isfinite(block)
        if bad.any():
            bad_frames.append(start + np.flatnonzero(bad.any(axis=1)))
            bad_rois |= bad.any(axis=0)
    if not bad_frames:
        return None
    return np.concatenate(bad_frames), np.flatnonzero(bad_rois)


def _preview(idx: np.ndarray, n: int = 8) -> str:
    shown = ", ".join(str(i) for i in idx[:n])
    return f"{shown}{', ...' if len(idx) > n else ''} ({len(idx)} in all)"


def file_rate(value: Any, path: str | Path, where: str = "fs") -> float | None:
    """A sampling rate stored in a file as a float (None stays None); text or <= 0 is CorruptFile."""
    if value is None:
        return None
    try:
        rate = float(np.asarray(value).item() if np.ndim(value) == 0 else value)
    except (TypeError, ValueError):
        raise CorruptFile(path, f"the sampling rate ({where}) is {value!r}, not a number; pass the real rate with fs=") from None
    if not (rate > 0 and math.isfinite(rate)):
        raise CorruptFile(path, f"the sampling rate ({where}) is {rate}, not a positive number; pass the real rate with fs=")
    return rate


def check_footprints(rec: Recording) -> None:
    """Footprints must be one row per ROI with pixel indices inside the image (else napari crashes)."""
    fp = rec.footprints
    if fp is None:
        return
    where = rec.source or rec.session
    if not sp.issparse(fp) or fp.ndim != 2 or fp.shape[0] != rec.n_rois:
        raise CorruptFile(where, f"footprints have shape {getattr(fp, 'shape', None)}, expected {rec.n_rois} ROIs x pixels")
    shape = rec.image_shape
    if shape is not None and fp.shape[1] != int(np.prod(shape)):
        raise CorruptFile(where, f"footprints cover {fp.shape[1]} pixels, the image has {shape[0]} x {shape[1]}")
    csr = fp.tocsr()
    idx, ptr = csr.indices, csr.indptr
    if len(ptr) != rec.n_rois + 1 or (len(ptr) and (ptr[0] != 0 or ptr[-1] != len(idx) or np.any(np.diff(ptr) < 0))):
        raise CorruptFile(where, "footprints are inconsistent (row pointers out of order)")
    if len(idx) and (idx.min() < 0 or idx.max() >= fp.shape[1]):
        raise CorruptFile(where, f"footprint pixel indices out of range (0..{fp.shape[1] - 1}): "
                                 f"found {int(idx.min())}..{int(idx.max())}")


def check_traces(rec: Recording, allow_nonfinite: bool = False) -> Recording:
    """Reject empty recordings, bad rates, bad footprints and (unless allowed) NaN/Inf values."""
    if rec.n_frames == 0 or rec.n_rois == 0:
        raise InvalidTraces(rec.source, f"empty recording: {rec.n_frames} frames x {rec.n_rois} ROIs")
    file_rate(rec.fs, rec.source or rec.session)
    check_footprints(rec)
    bad = nonfinite_summary(rec.traces)
    if bad is not None:
        frames, rois = bad
        msg = f"NaN/Inf values in frames {_preview(frames)} and ROIs {_preview(rois)}"
        if not allow_nonfinite:
            raise InvalidTraces(rec.source, msg + "; pass allow_nonfinite=True to load anyway")
        rec.provenance.setdefault("warnings", []).append(msg)
        rec.provenance["nonfinite_frames"] = int(len(frames))
    return rec


def check_min_length(rec: Recording, n_frames: int) -> None:
    """Raise when the recording is too short for one window of ``n_frames`` (context + horizon)."""
    if rec.n_frames < n_frames:
        raise InvalidTraces(
            rec.source or rec.session,
            f"too short: {rec.n_frames} frames, but one window needs {n_frames} (context + horizon)",
        )


def zero_variance_rois(traces) -> np.ndarray:
    """Indices of ROIs whose finite values never change (or that have none)."""
    lo = np.full(traces.shape[1], np.inf)
    hi = np.full(traces.shape[1], -np.inf)
    for _, block in _blocks(traces, traces.shape[0]):
        block = np.where(np.isfinite(block), block, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            lo = np.fmin(lo, np.nanmin(block, axis=0))
            hi = np.fmax(hi, np.nanmax(block, axis=0))
    return np.flatnonzero(~(hi > lo))


def find_problems(rec: Recording, window: int = 64) -> list[str]:
    """Human-readable problems that do not stop loading but matter for training."""
    problems = list(rec.provenance.get("warnings", []))
    flat = zero_variance_rois(rec.traces)
    if len(flat):
        ids = rec.roi_ids[flat]
        problems.append(f"{len(flat)} zero-variance ROIs: {_preview(ids)}")
    if rec.provenance.get("format") == "suite2p" and rec.fs == 1.0 and not rec.provenance.get("fs_given"):
        problems.append("fs is 1 Hz, the suite2p default placeholder; pass the real rate with fs=")
    if rec.n_frames < window:
        problems.append(f"too short for a {window}-frame window ({rec.n_frames} frames)")
    return problems
