"""suite2p output folders (0.x `ops.npy` and 1.x `db/settings/reg_outputs/detect_outputs.npy`).

F/Fneu/spks are stored ROIs x frames; they are memory-mapped and served transposed (a view,
no copy). stat.npy and ops.npy are pickles; they are read with an unpickler that admits only
numpy arrays and builtin containers (``arrays.load_pickled_npy``), so a crafted file cannot run code.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from poco_core.base.errors import CorruptFile, FormatNotRecognised, RecordingError
from poco_core.data.io.arrays import as_float32, load_npy, load_pickled_npy
from poco_core.data.io.validate import file_rate
from poco_core.data.recording import Recording

SETTINGS_FILES_1X = ("db.npy", "settings.npy", "reg_outputs.npy", "detect_outputs.npy")
CROPPED_IMAGES = ("Vcorr", "max_proj")
PLANE_RE = re.compile(r"^plane(\d+)$")

# stat.npy fields stored under another name, so one name means one definition across formats
SUITE2P_NAMES = {"snr": "suite2p_snr"}


def _planes(folder: Path) -> dict[int, Path]:
    return {int(m.group(1)): p for p in folder.iterdir() if p.is_dir() and (m := PLANE_RE.match(p.name))}


def find_plane(path: Path, plane: int | None = None) -> tuple[Path, str, int]:
    """(plane folder, session name, number of planes) for a save folder, suite2p/ folder or planeN folder."""
    if (path / "F.npy").exists() or PLANE_RE.match(path.name):
        root = path.parent.parent if path.parent.name == "suite2p" else path.parent
        return path, root.name, 1
    folder = path / "suite2p" if (path / "suite2p").is_dir() else path
    planes = _planes(folder)
    if not planes:
        raise FormatNotRecognised(path, "no suite2p plane folders (plane0, plane1, ...) found")
    chosen = min(planes) if plane is None else plane
    if chosen not in planes:
        raise RecordingError(path, f"no plane{chosen}; available planes: {sorted(planes)}")
    session = (folder.parent if folder.name == "suite2p" else folder).name
    return planes[chosen], session + (f"_plane{chosen}" if len(planes) > 1 else ""), len(planes)


def load_ops(plane_dir: Path) -> tuple[dict, str]:
    """Settings and images: ops.npy when present, else the 1.x files merged (flattening nothing)."""
    if (plane_dir / "ops.npy").exists():
        ops = _as_dict(load_pickled_npy(plane_dir / "ops.npy"), plane_dir / "ops.npy")
        settings = plane_dir / "settings.npy"
        if ops.get("fs") is None and settings.exists():  # suite2p 1.x keeps the rate in settings.npy
            fs = _as_dict(load_pickled_npy(settings), settings).get("fs")
            if fs is not None:
                return {**ops, "fs": fs}, "ops.npy+settings.npy"
        return ops, "ops.npy"
    ops: dict = {}
    found = [name for name in SETTINGS_FILES_1X if (plane_dir / name).exists()]
    for name in found:
        ops.update(_as_dict(load_pickled_npy(plane_dir / name), plane_dir / name))
    return ops, "+".join(found)


def _as_dict(obj, path: Path) -> dict:
    if not isinstance(obj, dict):
        raise CorruptFile(path, f"expected a pickled dict, found {type(obj).__name__}")
    return obj


def _anatomy(ops: dict, name: str, shape: tuple[int, int] | None) -> np.ndarray | None:
    """The named image, padded back to Ly x Lx when suite2p stored it cropped to yrange x xrange."""
    img = ops.get(name)
    if img is None:
        return None
    img = np.asarray(img, dtype=np.float32)
    if name in CROPPED_IMAGES and shape is not None and img.shape != shape:
        (y0, y1), (x0, x1) = ops["yrange"], ops["xrange"]
        full = np.zeros(shape, dtype=np.float32)
        full[y0:y1, x0:x1] = img
        img = full
    return img


def _footprints(stat: np.ndarray, shape: tuple[int, int], path: Path) -> sp.csr_matrix:
    ly, lx = shape
    rows, cols, vals = [], [], []
    for i, s in enumerate(stat):
        try:
            ypix, xpix = np.asarray(s["ypix"]), np.asarray(s["xpix"])
            lam = np.asarray(s.get("lam", np.ones(len(ypix))), dtype=np.float32)
        except (KeyError, TypeError) as exc:
            raise CorruptFile(path, f"ROI {i} has no ypix/xpix pixel lists") from exc
        if len(ypix) and (ypix.max() >= ly or xpix.max() >= lx or min(ypix.min(), xpix.min()) < 0):
            raise CorruptFile(path, f"ROI {i} has pixels outside the {ly} x {lx} field of view")
        rows.append(np.full(len(ypix), i))
        cols.append(ypix * lx + xpix)
        vals.append(lam)
    cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
    return sp.csr_matrix((cat(vals, np.float32), (cat(rows, np.int64), cat(cols, np.int64))), shape=(len(stat), ly * lx))


def _check_rois(plane_dir: Path, name: str, n_found: int, n_rois: int) -> None:
    if n_found != n_rois:
        raise CorruptFile(plane_dir / name, f"{n_found} ROIs, but F.npy has {n_rois}")


def read_suite2p(
    path: Path,
    plane: int | None = None,
    neuropil_coef: float | None = None,
    iscell_only: bool = False,
    anatomy: str = "meanImg",
) -> Recording:
    """Raw F by default; ``neuropil_coef=0.7`` gives F - 0.7 Fneu (a float32 copy); Fneu/spks go to extra_traces."""
    plane_dir, session, n_planes = find_plane(path, plane)
    if not (plane_dir / "F.npy").exists():
        raise RecordingError(plane_dir, "suite2p plane folder has no F.npy")
    raw = load_npy(plane_dir / "F.npy")
    if raw.ndim != 2:
        raise CorruptFile(plane_dir / "F.npy", f"shape {raw.shape}, expected (ROIs, frames)")
    n_rois = raw.shape[0]
    extra = {}
    for name in ("Fneu", "spks"):
        if (plane_dir / f"{name}.npy").exists():
            arr = load_npy(plane_dir / f"{name}.npy")
            if arr.shape != raw.shape:
                raise CorruptFile(plane_dir / f"{name}.npy", f"shape {arr.shape} does not match F.npy {raw.shape}")
            extra[name] = as_float32(arr.T)
    traces = as_float32(raw.T)
    if neuropil_coef is not None:
        if "Fneu" not in extra:
            raise RecordingError(plane_dir, "neuropil_coef needs Fneu.npy, which is missing")
        traces = np.asarray(traces - np.float32(neuropil_coef) * extra["Fneu"], dtype=np.float32)

    ops, ops_source = load_ops(plane_dir)
    shape = (int(ops["Ly"]), int(ops["Lx"])) if "Ly" in ops and "Lx" in ops else None
    roi_info: dict = {}
    footprints = centroids = None
    if (plane_dir / "stat.npy").exists():
        stat = load_pickled_npy(plane_dir / "stat.npy")
        _check_rois(plane_dir, "stat.npy", len(stat), n_rois)
        if shape is None and n_rois:
            shape = (max(int(np.max(s["ypix"])) for s in stat) + 1, max(int(np.max(s["xpix"])) for s in stat) + 1)
        footprints = _footprints(stat, shape, plane_dir / "stat.npy") if shape else None
        if n_rois and all("med" in s for s in stat):
            centroids = np.array([s["med"] for s in stat], dtype=float)
        for key in ("npix", "skew", "compact", "snr"):
            if n_rois and all(key in s for s in stat):  # suite2p's own SNR keeps its name: "snr" is ours
                roi_info[SUITE2P_NAMES.get(key, key)] = np.array([s[key] for s in stat], dtype=float)
    if (plane_dir / "iscell.npy").exists():
        iscell = load_npy(plane_dir / "iscell.npy", mmap=False)
        if iscell.ndim != 2 or iscell.shape[1] < 1:
            raise CorruptFile(plane_dir / "iscell.npy", f"shape {iscell.shape}, expected (ROIs, 2)")
        _check_rois(plane_dir, "iscell.npy", iscell.shape[0], n_rois)
        roi_info["iscell"] = iscell[:, 0].astype(bool)
        if iscell.shape[1] > 1:
            roi_info["iscell_prob"] = iscell[:, 1].astype(float)
    elif iscell_only:
        raise RecordingError(plane_dir, "iscell_only needs iscell.npy, which is missing")

    fs = file_rate(ops.get("fs"), plane_dir / ops_source.split("+")[0] if ops_source else plane_dir, "fs")
    rec = Recording(
        traces=traces,
        fs=fs if fs is not None else 1.0,
        roi_ids=np.arange(n_rois).astype(str),
        session=session,
        footprints=footprints,
        centroids=centroids,
        anatomy=_anatomy(ops, anatomy, shape),
        source=str(plane_dir),
        provenance={
            "format": "suite2p",
            "plane": plane_dir.name,
            "n_planes": n_planes,
            "settings_from": ops_source,
            "neuropil_coef": neuropil_coef,
            "image_shape": shape,
            "fs_placeholder": fs is None,
        },
        extra_traces=extra,
        roi_info=roi_info,
    )
    if iscell_only:
        rec = rec.select_rois(np.flatnonzero(roi_info["iscell"]))
    return rec
