"""Which reader a path needs, decided from its content (magic bytes, HDF5 layout, folder files)."""
from __future__ import annotations

from pathlib import Path

import h5py

from poco_core.base.errors import CorruptFile, FormatNotRecognised, RecordingError
from poco_core.data.io.arrays import HDF5_SIGNATURE
from poco_core.data.io.h5 import FORMAT_NAME

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
EXTENSION_FORMATS = {".npy": "npy", ".npz": "npz", ".csv": "csv", ".tsv": "csv", ".nwb": "nwb", ".h5": "hdf5", ".hdf5": "hdf5"}


SUITE2P_MARKERS = ("F.npy", "stat.npy", "iscell.npy", "ops.npy", "db.npy")


def _folder_format(path: Path) -> str:
    plane_dirs = [path, *path.glob("plane[0-9]*"), *path.glob("suite2p/plane[0-9]*")]
    if any((d / m).exists() for d in plane_dirs for m in SUITE2P_MARKERS):
        return "suite2p"
    if any(path.glob("*_activity_matrix.csv")):
        return "triplett"
    raise FormatNotRecognised(path, "folder is neither a suite2p output nor a Triplett-style CSV folder "
                                    "(for a folder of several recordings use load_dataset)")


def _hdf5_format(path: Path) -> str:
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") == FORMAT_NAME:
                return "poco-h5"
            if "nwb_version" in f.attrs or f.attrs.get("namespace") == "core":
                return "nwb"
            if "estimates" in f:
                return "caiman"
            keys = sorted(f.keys())
    except OSError as exc:
        raise CorruptFile(path, f"HDF5 file cannot be opened (truncated or corrupt?): {exc}") from exc
    raise FormatNotRecognised(path, f"HDF5 file is not NWB, CaImAn or a POCO recording (top-level keys: {keys})")


def _looks_numeric_text(head: bytes, complete: bool) -> bool:
    """A numeric table, optionally with one header line; a cut-off last field is ignored."""
    if b"\0" in head:
        return False
    text = head.decode("utf-8", errors="ignore")
    if not complete:
        text = text[: max(text.rfind(c) for c in ",\t\n ")]
    lines = [ln for ln in text.splitlines() if ln.strip()][:3]
    numeric = [i for i, ln in enumerate(lines) if all(_is_number(f) for f in ln.replace(",", " ").split())]
    return bool(numeric) and numeric[0] <= 1 and len(numeric) >= len(lines) - 1


def _is_number(field: str) -> bool:
    try:
        float(field)
        return True
    except ValueError:
        return False


def _check_npz(path: Path) -> None:
    """A zip archive is an .npz only when it holds .npy members (a checkpoint is a zip too)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CorruptFile(path, f"a damaged zip/.npz archive: {exc}") from exc
    if any(n.endswith("data.pkl") for n in names):
        raise FormatNotRecognised(path, "a POCO/torch checkpoint, not a recording")
    if not names or not all(n.endswith(".npy") for n in names):
        raise FormatNotRecognised(path, "a zip archive that is not an .npz of arrays")


def detect_format(path: str | Path) -> str:
    """One of suite2p, triplett, nwb, caiman, poco-h5, npy, npz, csv; raises when nothing fits."""
    path = Path(path)
    if not path.exists():
        raise RecordingError(path, "does not exist")
    if path.is_dir():
        return _folder_format(path)
    with open(path, "rb") as fh:
        head = fh.read(4096)
    claimed = EXTENSION_FORMATS.get(path.suffix.lower())
    if not head:
        raise CorruptFile(path, "file is empty")
    if head.startswith(HDF5_SIGNATURE):
        return _hdf5_format(path)
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(ZIP_MAGIC):
        _check_npz(path)
        return "npz"
    if _looks_numeric_text(head, complete=len(head) < 4096):
        return "csv"
    if claimed is not None:
        raise CorruptFile(path, f"the name says {claimed} but the content is not (truncated, corrupt or mislabelled)")
    raise FormatNotRecognised(path, "unknown file type")
