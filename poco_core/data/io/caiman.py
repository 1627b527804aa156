"""CaImAn results saved with ``cnm.save('x.hdf5')``.

Traces are estimates/C (or F_dff, S, YrA via ``series=``), stored components x frames and
served transposed; footprints come from the csc estimates/A whose columns reshape to the field
in Fortran order; missing values are stored as the bytes b'NoneType'.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.sparse as sp

from poco_core.base.errors import CorruptFile, RecordingError
from poco_core.data.io.arrays import h5_traces, open_h5
from poco_core.data.io.validate import file_rate
from poco_core.data.recording import Recording

TRACE_CHOICES = ("C", "F_dff", "S", "YrA")


def _value(group: h5py.Group, key: str) -> Any:
    """A dataset's value, None when absent or stored as 'NoneType'; byte strings decoded."""
    if key not in group or not isinstance(group[key], h5py.Dataset):
        return None
    value = group[key][()]
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return None if isinstance(value, str) and value == "NoneType" else value


def _fortran_to_c(a: sp.csc_matrix, dims: tuple[int, int]) -> sp.csr_matrix:
    """(d1*d2, K) Fortran-order columns -> (K, d1*d2) rows in C order (y * d2 + x)."""
    d1, d2 = dims
    coo = a.tocoo()
    y, x = coo.row % d1, coo.row // d1
    return sp.csr_matrix((coo.data.astype(np.float32), (coo.col, y * d2 + x)), shape=(a.shape[1], d1 * d2))


def _dataset(group: h5py.Group, key: str, path: Path) -> h5py.Dataset | None:
    ds = group.get(key)
    if ds is None or not isinstance(ds, h5py.Dataset) or ds.dtype.kind in "SOU":
        return None  # absent, or b'NoneType'
    if ds.ndim != 2:
        raise CorruptFile(path, f"estimates/{key} has shape {ds.shape}, expected (components, frames)")
    return ds


def read_caiman(path: Path, series: str = "C", iscell_only: bool = False, lazy: bool | None = None) -> Recording:
    """``series`` picks the trace matrix; ``iscell_only`` keeps estimates/idx_components (accepted) only."""
    if series not in TRACE_CHOICES:
        raise RecordingError(path, f"series {series!r} not supported for CaImAn; choose one of {list(TRACE_CHOICES)}")
    with open_h5(path) as f:
        if "estimates" not in f:
            raise CorruptFile(path, "no estimates group (not a CaImAn cnm.save file?)")
        est = f["estimates"]
        available = [k for k in TRACE_CHOICES if _dataset(est, k, path) is not None]
        ds = _dataset(est, series, path)
        if ds is None:
            hint = " (F_dff exists only after detrend_df_f())" if series == "F_dff" else ""
            raise RecordingError(path, f"estimates/{series} is missing{hint}; available: {available}")
        n_rois = ds.shape[0]
        dims = _value(f, "dims")
        dims = _value(est, "dims") if dims is None else dims
        dims = None if dims is None else tuple(int(d) for d in np.ravel(dims))
        footprints = None
        if "A" in est and isinstance(est["A"], h5py.Group):
            g = est["A"]
            try:
                a = sp.csc_matrix((g["data"][()], g["indices"][()], g["indptr"][()]), shape=tuple(g["shape"][()]))
            except (KeyError, ValueError) as exc:
                raise CorruptFile(path, f"estimates/A is not a valid sparse matrix: {exc}") from exc
            if a.shape[1] != n_rois:
                raise CorruptFile(path, f"estimates/A has {a.shape[1]} components but {series} has {n_rois}")
            if dims is None or int(np.prod(dims)) != a.shape[0]:
                raise CorruptFile(path, f"dims {dims} do not match estimates/A's {a.shape[0]} pixels")
            footprints = _fortran_to_c(a, dims)
        fr = _value(f["params/data"], "fr") if "params/data" in f else None
        centroids = _value(est, "center")
        cn = _value(est, "Cn")
        roi_info = {k: np.asarray(v, dtype=float) for k in ("SNR_comp", "r_values") if (v := _value(est, k)) is not None and np.shape(v) == (n_rois,)}
        accepted = _value(est, "idx_components")
        if accepted is not None:
            roi_info["accepted"] = np.isin(np.arange(n_rois), np.asarray(accepted, dtype=int))
        elif iscell_only:
            raise RecordingError(path, "iscell_only needs estimates/idx_components (run evaluate_components first)")
        rec = Recording(
            traces=h5_traces(path, ds, True, lazy),
            fs=file_rate(fr, path, "params/data/fr") or 1.0,
            roi_ids=np.arange(n_rois).astype(str),
            session=path.stem,
            footprints=footprints,
            centroids=None if centroids is None or np.shape(centroids) != (n_rois, 2) else centroids,
            anatomy=None if cn is None or np.shape(cn) != dims else np.asarray(cn, dtype=np.float32),
            source=str(path),
            provenance={
                "format": "caiman",
                "series": series,
                "series_choices": available,
                "image_shape": dims,
                "fs_placeholder": fr is None,
            },
            roi_info=roi_info,
        )
    return rec.select_rois(np.flatnonzero(roi_info["accepted"])) if iscell_only else rec
