"""Plain trace matrices (.npy, .npz, .csv) and the Triplett et al. 2018 zebrafish CSV folders.

These files carry no sampling rate: pass ``fs=``, else a 1 Hz placeholder is used and flagged.
Orientation: frames x ROIs unless ``rois_first=True``; with ``rois_first=None`` (auto) a matrix
with at least twice as many columns as rows is taken as ROIs x frames (recordings usually have
far more frames than ROIs). ROIs-first .npy files are served as a transposed memmap (no copy).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from poco_core.base.errors import CorruptFile, FormatNotRecognised, RecordingError
from poco_core.data.io.arrays import as_float32, load_npy, load_npz
from poco_core.data.io.validate import file_rate
from poco_core.data.recording import Recording

AUTO_RATIO = 2


def _orient(data: np.ndarray, rois_first: bool | None, path: Path) -> tuple[np.ndarray, str]:
    if data.ndim != 2:
        raise CorruptFile(path, f"shape {data.shape}, expected a 2-D frames x ROIs matrix")
    if rois_first is None:
        rois_first = data.shape[1] >= AUTO_RATIO * data.shape[0]
        how = "auto: columns >= 2 x rows" if rois_first else "auto: default"
    else:
        how = "given"
    return (data.T, f"ROIs x frames ({how})") if rois_first else (data, f"frames x ROIs ({how})")


def _csv_matrix(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """Numeric CSV/TSV matrix and its header names when the first line is not numeric."""
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptFile(path, f"not a readable text file: {exc}") from exc
    delimiter = "," if "," in first else ("\t" if "\t" in first else None)
    fields = [f.strip() for f in first.split(delimiter)]
    try:
        [float(f) for f in fields]
        header = None
    except ValueError:
        header = fields
    try:
        data = np.loadtxt(path, delimiter=delimiter, skiprows=int(header is not None), ndmin=2, dtype=np.float32)
    except ValueError as exc:
        raise CorruptFile(path, f"not a numeric matrix: {exc}") from exc
    return data, header


def _recording(path: Path, data: np.ndarray, rois_first: bool | None, fs: float | None = None,
               roi_ids=None, roi_names=None, **fields) -> Recording:
    traces, orientation = _orient(data, rois_first, path)
    n = traces.shape[1]
    return Recording(
        traces=as_float32(traces),
        fs=float(fs) if fs is not None else 1.0,
        roi_ids=np.arange(n).astype(str) if roi_ids is None else roi_ids,
        roi_names=roi_names if roi_names is not None and len(roi_names) == n else None,
        source=str(path),
        session=fields.pop("session", path.stem),
        provenance={"format": fields.pop("format"), "orientation": orientation, "fs_placeholder": fs is None},
        **fields,
    )


def read_npy(path: Path, rois_first: bool | None = None) -> Recording:
    return _recording(path, load_npy(path), rois_first, format="npy")


def read_npz(path: Path, rois_first: bool | None = None, key: str | None = None) -> Recording:
    """Array ``key``, else 'traces', else the only 2-D array; optional 'fs' and 'roi_ids' entries are used."""
    arrays = load_npz(path)
    matrices = [k for k, v in arrays.items() if v.ndim == 2]
    name = key or ("traces" if "traces" in arrays else (matrices[0] if len(matrices) == 1 else None))
    if name not in arrays:
        raise RecordingError(path, f"cannot tell which array holds the traces; pass key= one of {sorted(arrays)}")
    fs = file_rate(arrays.get("fs"), path, "the 'fs' array")
    return _recording(path, arrays[name], rois_first, fs=fs, roi_ids=arrays.get("roi_ids"), format="npz")


def read_csv(path: Path, rois_first: bool | None = None) -> Recording:
    data, header = _csv_matrix(path)
    return _recording(path, data, rois_first, roi_names=header, format="csv")


def _single(folder: Path, suffix: str, required: bool = True) -> Path | None:
    hits = sorted(folder.glob(f"*{suffix}"))
    if len(hits) > 1:
        raise RecordingError(folder, f"several *{suffix} files: {[h.name for h in hits]}")
    if not hits and required:
        raise FormatNotRecognised(folder, f"no *{suffix} file")
    return hits[0] if hits else None


def _assemblies(path: Path, n_rois: int) -> np.ndarray:
    """Per-ROI ';'-joined assembly numbers (1-based, as in the file); ROIs may be in several or none."""
    members: list[list[str]] = [[] for _ in range(n_rois)]
    for k, line in enumerate(path.read_text().splitlines(), start=1):
        for item in filter(None, (s.strip() for s in line.split(","))):
            try:
                roi = int(item) - 1
            except ValueError as exc:
                raise CorruptFile(path, f"line {k}: {item!r} is not an ROI number") from exc
            if not 0 <= roi < n_rois:
                raise CorruptFile(path, f"line {k}: ROI {roi + 1} is outside 1..{n_rois}")
            members[roi].append(str(k))
    return np.array([";".join(m) for m in members])


def read_triplett(path: Path) -> Recording:
    """Folder with <fish>_activity_matrix.csv (dF/F, ROIs x frames), _cell_coordinates.csv (x, y per
    ROI, taken as image columns/rows) and _assembly_assignments.csv (one assembly per line, 1-based ROIs)."""
    activity = _single(path, "_activity_matrix.csv")
    data, _ = _csv_matrix(activity)
    n_rois = data.shape[0]
    centroids, roi_info = None, {}
    coords = _single(path, "_cell_coordinates.csv", required=False)
    if coords is not None:
        xy, _ = _csv_matrix(coords)
        if xy.shape != (n_rois, 2):
            raise CorruptFile(coords, f"shape {xy.shape}, expected ({n_rois} ROIs, 2)")
        centroids = xy[:, ::-1]
    assemblies = _single(path, "_assembly_assignments.csv", required=False)
    if assemblies is not None:
        roi_info["assemblies"] = _assemblies(assemblies, n_rois)
    session = activity.name[: -len("_activity_matrix.csv")]
    return _recording(activity, data, True, session=session, centroids=centroids, roi_info=roi_info, format="triplett")
