"""`load_recording`: detect the format, run its reader, apply the common options and checks."""
from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from poco_core.base.errors import RecordingError
from poco_core.data.io.caiman import read_caiman
from poco_core.data.io.detect import detect_format
from poco_core.data.io.h5 import read_project_h5
from poco_core.data.io.nwb import read_nwb
from poco_core.data.io.plain import read_csv, read_npy, read_npz, read_triplett
from poco_core.data.io.suite2p import read_suite2p
from poco_core.data.io.validate import check_traces
from poco_core.data.recording import Recording

READERS: dict[str, Callable[..., Recording]] = {
    "suite2p": read_suite2p,
    "nwb": read_nwb,
    "caiman": read_caiman,
    "poco-h5": read_project_h5,
    "npy": read_npy,
    "npz": read_npz,
    "csv": read_csv,
    "triplett": read_triplett,
}
FS_PLACEHOLDER = "the file states no sampling rate; using a 1 Hz placeholder (pass fs=)"


def _rate(fs: Any, path: Path) -> float | None:
    """A given sampling rate as a positive float (manifests may hold text)."""
    if fs is None:
        return None
    try:
        value = float(fs)
    except (TypeError, ValueError):
        raise RecordingError(path, f"sampling rate fs={fs!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise RecordingError(path, f"sampling rate fs={fs!r} must be a positive number of Hz")
    return value


def reader_options(fmt: str) -> list[str]:
    """Format-specific options that ``load_recording`` passes on to the reader."""
    return [p for p in inspect.signature(READERS[fmt]).parameters if p != "path"]


def load_recording(
    path: str | Path,
    *,
    fs: float | None = None,
    session: str | None = None,
    dataset: str | None = None,
    allow_nonfinite: bool = False,
    format: str | None = None,
    **opts: Any,
) -> Recording:
    """Read any supported recording; ``fs`` overrides the file's rate, other options go to the reader.

    Reader options: suite2p ``plane, neuropil_coef, iscell_only, anatomy``; NWB ``series, lazy``;
    CaImAn ``series, iscell_only, lazy``; project HDF5 ``lazy``; npy/npz/csv ``rois_first`` (npz: ``key``).
    None means "the reader's default"; options a format does not take are rejected unless None.
    """
    path = Path(path)
    if path.exists() and not (path.is_file() or path.is_dir()):
        raise RecordingError(path, "is not a regular file or folder (a pipe, socket or device); poco reads recordings from files")
    fs = _rate(fs, path)
    fmt = format or detect_format(path)
    if fmt not in READERS:
        raise RecordingError(path, f"unknown format {fmt!r}; known: {sorted(READERS)}")
    accepted = reader_options(fmt)
    unknown = sorted(k for k, v in opts.items() if k not in accepted and v is not None)
    if unknown:
        raise RecordingError(path, f"option(s) {unknown} do not apply to {fmt}; it takes {accepted}")
    rec = READERS[fmt](path, **{k: v for k, v in opts.items() if k in accepted and v is not None})
    provenance = {**rec.provenance, "format": fmt, "options": {k: v for k, v in opts.items() if v is not None}}
    if fs is not None:
        provenance.update(fs_given=True, fs_in_file=None if provenance.get("fs_placeholder") else rec.fs, fs_placeholder=False)
    if provenance.get("fs_placeholder"):
        provenance["warnings"] = [*provenance.get("warnings", []), FS_PLACEHOLDER]
    rec = replace(
        rec,
        fs=float(fs) if fs is not None else rec.fs,
        session=session or rec.session,
        dataset=dataset or rec.dataset,
        provenance=provenance,
    )
    return check_traces(rec, allow_nonfinite=allow_nonfinite)
