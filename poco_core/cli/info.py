"""`poco info PATH`: what a recording holds and what is wrong with it, as text or JSON."""
from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np

from poco_core.cli.safety import positive_float, positive_int
from poco_core.data.io import find_problems, load_recording
from poco_core.data.recording import Recording

WINDOW = 64


def cell_count(rec: Recording) -> str | None:
    """'48 of 53 (iscell)': ROIs the pipeline classified as cells (suite2p iscell, CaImAn accepted)."""
    from poco_core.data.preprocess import CELL_COLUMNS

    for column in CELL_COLUMNS:
        if column in rec.roi_info:
            return f"{int(np.count_nonzero(np.asarray(rec.roi_info[column], dtype=float) > 0.5))} of {rec.n_rois} ({column})"
    return None


def summarize(rec: Recording, window: int = WINDOW) -> dict:
    """JSON-ready description of a recording, including the problems found."""
    return {
        "path": rec.source,
        "format": rec.provenance.get("format"),
        "session": rec.session,
        "dataset": rec.dataset,
        "frames": rec.n_frames,
        "rois": rec.n_rois,
        "fs": rec.fs,
        "duration_s": round(rec.duration_s, 3),
        "regions": None if rec.regions is None else dict(Counter(rec.regions.tolist())),
        "anatomy_shape": None if rec.anatomy is None else list(rec.anatomy.shape),
        "image_shape": None if rec.image_shape is None else list(rec.image_shape),
        "footprints": rec.footprints is not None,
        "centroids": rec.roi_centroids() is not None,
        "extra_traces": sorted(rec.extra_traces),
        "roi_info": sorted(rec.roi_info),
        "cells": cell_count(rec),
        "series": rec.provenance.get("series"),
        "series_choices": rec.provenance.get("series_choices"),
        "problems": find_problems(rec, window),
    }


def _text(info: dict) -> str:
    skip = {"problems", "path"}
    lines = [f"{info['path']}"] + [f"  {k}: {v}" for k, v in info.items() if k not in skip and v not in (None, [], {})]
    lines.append("  problems: " + ("none" if not info["problems"] else ""))
    lines += [f"    - {p}" for p in info["problems"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from poco_core.cli.safety import check_inputs

    check_inputs([args.path])
    rec = load_recording(
        args.path, fs=args.fs, plane=args.plane, series=args.series, allow_nonfinite=True,
    )
    info = summarize(rec, args.window)
    print(json.dumps(info, indent=2) if args.json else _text(info))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("info", help="describe a recording and report problems")
    p.add_argument("path", help="recording file or folder (suite2p, NWB, CaImAn, POCO .h5, npy/npz/csv)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--fs", type=positive_float, help="sampling rate in Hz (overrides the file's)")
    p.add_argument("--plane", type=int, help="suite2p plane number (default: plane0)")
    p.add_argument("--series", help="NWB series name or CaImAn trace (C, F_dff, S, YrA)")
    p.add_argument("--window", type=positive_int, default=WINDOW, help="window length the recording must hold")
    p.set_defaults(func=run)
