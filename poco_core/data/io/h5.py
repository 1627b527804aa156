"""The project's own HDF5 recording format (schema in docs/formats.md), its writer and appender.

Files are written with libver='latest' so a live writer can append frames in SWMR mode while
readers keep the file open; traces are chunked with an unlimited frame axis for that reason.
Every dataset carries the fletcher32 checksum filter: HDF5 verifies it on each read, and a
mismatch (flipped bytes) is reported as CorruptFile naming the file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.sparse as sp

from poco_core.base.errors import CorruptFile, InvalidTraces, RecordingError
from poco_core.base.outputs import atomic_path
from poco_core.data.io.arrays import h5_traces, open_h5
from poco_core.data.recording import Recording

FORMAT_NAME = "poco-recording"
FORMAT_VERSION = 1
CHUNK_BYTES = 1 << 20
STR = h5py.string_dtype()


def _chunk_rows(n_rois: int) -> int:
    return int(max(1, min(4096, CHUNK_BYTES // (4 * max(n_rois, 1)))))


def _json_default(o: Any) -> Any:
    return o.tolist() if hasattr(o, "tolist") else str(o)


def _key(name: str) -> str:
    """An HDF5 member name for a series/column name: '/' would make nested groups, so it (and '%')
    is percent-escaped; the dataset's ``name`` attribute keeps the original (see `_named`)."""
    return name.replace("%", "%25").replace("/", "%2F")


def _named(group: Any) -> dict[str, Any]:
    """{original name: dataset} of a group's datasets; nested groups (files written before names
    were escaped) give 'a/b' names, so those files read too."""
    out: dict[str, Any] = {}

    def add(key: str, obj: Any) -> None:  # visititems stops at the first non-None return
        if isinstance(obj, h5py.Dataset):
            out[str(obj.attrs.get("name", key))] = obj

    group.visititems(add)
    return out


def _write_series(group: h5py.Group, name: str, values: Any) -> None:
    """A (T, N) float32 appendable dataset, copied block by block so memmaps are never loaded whole."""
    n_frames, n_rois = values.shape
    rows = min(_chunk_rows(n_rois), max(n_frames, 16))  # a short file is not padded to a 1 MB chunk
    ds = group.create_dataset(
        _key(name), shape=(n_frames, n_rois), maxshape=(None, n_rois), dtype=np.float32,
        chunks=(rows, n_rois), compression="gzip", compression_opts=1, shuffle=True, fletcher32=True,
    )
    ds.attrs["name"] = name
    step = rows * 16
    for start in range(0, n_frames, step):
        ds[start:start + step] = np.asarray(values[start:start + step], dtype=np.float32)


def _write_column(group: h5py.Group, name: str, values: Any) -> None:
    values = np.asarray(values)
    if values.dtype.kind in "USO":  # variable-length strings take no filters (HDF5)
        ds = group.create_dataset(_key(name), data=values.astype(str).astype(object), dtype=STR)
    else:
        ds = group.create_dataset(_key(name), data=values, **({"fletcher32": True} if values.size else {}))
    ds.attrs["name"] = name


def save_recording(rec: Recording, path: str | Path) -> Path:
    """Write ``rec`` as a project HDF5 file, atomically (temp file in the same folder + os.replace)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        _write(rec, tmp)
    return path


def _write(rec: Recording, tmp: Path) -> None:
    """The file's content (disk errors surface as OSError; atomic_path names the target)."""
    with h5py.File(tmp, "w", libver="latest") as f:
        f.attrs.update(
            format=FORMAT_NAME, version=FORMAT_VERSION, fs=float(rec.fs), session=rec.session,
            dataset=rec.dataset, source=rec.source, provenance=json.dumps(rec.provenance, default=_json_default),
        )
        if rec.image_shape is not None:
            f.attrs["image_shape"] = np.asarray(rec.image_shape, dtype=np.int64)
        _write_series(f, "traces", rec.traces)
        _write_column(f, "roi_ids", rec.roi_ids)
        for name in ("regions", "roi_names", "centroids", "anatomy"):
            if getattr(rec, name) is not None:
                _write_column(f, name, getattr(rec, name))
        if rec.footprints is not None:
            g = f.create_group("footprints")
            fp = rec.footprints.tocsr()
            for part in ("data", "indices", "indptr"):
                _write_column(g, part, getattr(fp, part))
            g.attrs["shape"] = np.asarray(fp.shape, dtype=np.int64)
        extra = f.create_group("extra_traces")
        for name, values in rec.extra_traces.items():
            _write_series(extra, name, values)
        info = f.create_group("roi_info")
        for name, values in rec.roi_info.items():
            _write_column(info, name, values)


def _check_header(f: h5py.File, path: Path) -> None:
    if f.attrs.get("format") != FORMAT_NAME:
        raise CorruptFile(path, f"not a {FORMAT_NAME} file (format attribute is {f.attrs.get('format')!r})")
    version = int(f.attrs.get("version", -1))
    if version > FORMAT_VERSION:
        raise RecordingError(path, f"format version {version} is newer than this POCO reads ({FORMAT_VERSION}); upgrade")
    missing = [k for k in ("traces", "roi_ids") if k not in f] + [a for a in ("fs",) if a not in f.attrs]
    if missing:
        raise CorruptFile(path, f"missing {', '.join(missing)}")


def read_project_h5(path: Path, lazy: bool | None = None) -> Recording:
    """Read a project file; large traces stay on disk behind a LazyH5Array (``lazy`` forces either way)."""
    with open_h5(path) as f:
        _check_header(f, path)
        traces = f["traces"]
        if traces.ndim != 2:
            raise CorruptFile(path, f"traces has shape {traces.shape}, expected (frames, ROIs)")
        try:
            text = lambda name: f[name].asstr()[()] if name in f else None  # noqa: E731
            footprints = None
            if "footprints" in f:
                g = f["footprints"]
                footprints = sp.csr_matrix((g["data"][()], g["indices"][()], g["indptr"][()]), shape=tuple(g.attrs["shape"]))
            extra = {k: h5_traces(path, ds, False, lazy) for k, ds in _named(f["extra_traces"]).items()} if "extra_traces" in f else {}
            info = {k: ds.asstr()[()] if ds.dtype.kind == "O" else ds[()]
                    for k, ds in (_named(f["roi_info"]).items() if "roi_info" in f else ())}
            provenance = json.loads(f.attrs.get("provenance", "{}"))
            centroids = f["centroids"][()] if "centroids" in f else None
            anatomy = f["anatomy"][()] if "anatomy" in f else None
            fs = float(f.attrs["fs"])
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise CorruptFile(path, f"damaged project file: {exc}") from exc
        for k, v in extra.items():
            if v.shape != traces.shape:
                raise CorruptFile(path, f"extra_traces/{k} has shape {v.shape}, traces {traces.shape}")
        shape = f.attrs.get("image_shape")
        return Recording(
            traces=h5_traces(path, traces, False, lazy),
            fs=fs,
            roi_ids=text("roi_ids"),
            session=str(f.attrs.get("session", path.stem)),
            dataset=str(f.attrs.get("dataset", "default")),
            footprints=footprints,
            centroids=centroids,
            anatomy=anatomy,
            regions=text("regions"),
            roi_names=text("roi_names"),
            source=str(path),
            provenance={**provenance, "format": "poco-h5", "origin_source": f.attrs.get("source", ""),
                        "image_shape": None if shape is None else tuple(int(s) for s in shape)},
            extra_traces=extra,
            roi_info=info,
        )


def append_frames(path: str | Path, frames: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> int:
    """Append (t, N) frames (and the same frames of each extra series) in SWMR mode; returns the new length."""
    path = Path(path)
    frames = np.atleast_2d(np.asarray(frames, dtype=np.float32))
    extra = extra or {}
    with open_h5(path, "a") as f:
        _check_header(f, path)
        series = {"traces": (f["traces"], frames)}
        group = _named(f["extra_traces"]) if "extra_traces" in f else {}
        if set(group) != set(extra):
            raise RecordingError(path, f"append needs frames for every extra series: {sorted(group)}, got {sorted(extra)}")
        series.update({f"extra_traces/{k}": (group[k], np.atleast_2d(np.asarray(v, dtype=np.float32))) for k, v in extra.items()})
        for name, (ds, new) in series.items():
            if new.ndim != 2 or new.shape != (frames.shape[0], ds.shape[1]):
                raise InvalidTraces(path, f"cannot append shape {new.shape} to {name} of shape {ds.shape}")
        f.swmr_mode = True
        for ds, new in series.values():
            n = ds.shape[0]
            ds.resize(n + new.shape[0], axis=0)
            ds[n:] = new
            ds.flush()
        return int(f["traces"].shape[0])
