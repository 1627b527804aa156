"""`load_dataset`: several sessions from a folder of recordings or a YAML/JSON manifest.

Manifest::

    dataset: mice_v1                 # default dataset name for the sessions
    sessions:
      - path: m1/suite2p             # relative to the manifest's folder
        session: m1                  # optional, default from the file; must be unique
        fs: 30                       # optional; any load_recording option is allowed here
        regions: m1_regions.csv      # optional region label per ROI (see read_regions)
        dataset: other               # optional per-session dataset name
"""
from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from poco_core.base.errors import CorruptFile, FormatNotRecognised, RecordingError
from poco_core.data.io.detect import detect_format
from poco_core.data.io.load import load_recording
from poco_core.data.recording import Recording

MANIFEST_SUFFIXES = {".yaml", ".yml", ".json"}


def read_regions(path: Path, rec: Recording) -> np.ndarray:
    """Region labels from a CSV: columns ``roi_id,region`` (matched by ROI id), or one label per line in ROI order."""
    try:
        rows = [r for r in csv.reader(path.read_text(encoding="utf-8").splitlines()) if r]
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(path, f"cannot read region labels: {exc}") from exc
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if {"roi_id", "region"} <= set(header):
        i, j = header.index("roi_id"), header.index("region")
        by_id = {r[i].strip(): r[j].strip() for r in rows[1:]}
        missing = [rid for rid in rec.roi_ids if rid not in by_id]
        if missing:
            raise CorruptFile(path, f"no region for ROI ids {missing[:8]} ({len(missing)} in all)")
        return np.array([by_id[rid] for rid in rec.roi_ids])
    labels = [r[0].strip() for r in rows[1:]] if header == ["region"] else [r[0].strip() for r in rows]
    if len(labels) != rec.n_rois:
        raise CorruptFile(path, f"{len(labels)} region labels for {rec.n_rois} ROIs")
    return np.array(labels)


def _read_manifest(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise CorruptFile(path, f"cannot parse manifest: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("sessions"), list) or not data["sessions"]:
        raise CorruptFile(path, "manifest needs a non-empty 'sessions' list")
    if "dataset" in data and not isinstance(data["dataset"], str):
        raise CorruptFile(path, f"'dataset' must be text, got {data['dataset']!r}")
    return data


def _from_manifest(path: Path, opts: dict[str, Any]) -> list[Recording]:
    data = _read_manifest(path)
    recs = []
    for k, entry in enumerate(data["sessions"]):
        if not isinstance(entry, dict) or "path" not in entry:
            raise CorruptFile(path, f"session {k} needs a 'path'")
        _check_entry(path, k, entry)
        entry = dict(entry)
        target = (path.parent / entry.pop("path")).resolve()
        regions = entry.pop("regions", None)
        entry.setdefault("dataset", data.get("dataset"))
        rec = load_recording(target, **{**opts, **entry})
        if regions is not None:
            rec = replace(rec, regions=read_regions(path.parent / regions, rec))
        recs.append(rec)
    return recs


def _check_entry(manifest: Path, k: int, entry: dict) -> None:
    """Manifest values of the wrong type are errors naming the manifest and the session."""
    for key in ("path", "session", "dataset", "regions"):
        if key in entry and not isinstance(entry[key], str):
            raise CorruptFile(manifest, f"session {k}: {key!r} must be text, got {entry[key]!r}")
    if "fs" in entry:
        fs = entry["fs"]
        if isinstance(fs, bool) or not isinstance(fs, (int, float)) or not fs > 0:
            raise CorruptFile(manifest, f"session {k}: 'fs' must be a positive number of Hz, got {fs!r}")


def _from_folder(path: Path, opts: dict[str, Any]) -> list[Recording]:
    recs = []
    for entry in sorted(p for p in path.iterdir() if not p.name.startswith(".")):
        if _is_recording(entry):  # notes, PDFs, ... are skipped
            recs.append(load_recording(entry, **{"dataset": path.name, **opts}))
    if not recs:
        raise FormatNotRecognised(path, "no recordings found in this folder")
    return recs


def _is_recording(path: Path) -> bool:
    try:
        detect_format(path)
        return True
    except FormatNotRecognised:
        return False


def load_dataset(path: str | Path, **opts: Any) -> list[Recording]:
    """Sessions of a folder (each recognised entry is one) or manifest; ``opts`` apply to every session."""
    path = Path(path)
    if not path.exists():
        raise RecordingError(path, "does not exist")
    if path.suffix.lower() in MANIFEST_SUFFIXES:
        recs = _from_manifest(path, opts)
    elif path.is_dir() and _is_recording(path):
        recs = [load_recording(path, **opts)]
    else:
        recs = _from_folder(path, opts)
    dupes = sorted(name for name, n in Counter((r.dataset, r.session) for r in recs).items() if n > 1)
    if dupes:
        raise RecordingError(path, f"session names must be unique within a dataset; repeated: {dupes}")
    return recs
