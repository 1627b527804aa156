"""`poco extract`: ROI traces from raw TIFF frames (registered, neuropil beside them) into a growing .h5.

``poco extract frames/ --rois suite2p/ --out traces.h5 --follow`` follows a folder the microscope
writes into; ``poco live traces.h5 --checkpoint model.pt`` (or the Live dock) forecasts from it in
another terminal. Without ``--follow`` it processes what is there and prints a summary.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from poco_core.base.errors import PocoError, RecordingError
from poco_core.cli.live import _stop_on_ctrl_c
from poco_core.live.extract import ExtractionConfig
from poco_core.live.frames import parse_plane

DEFAULTS = ExtractionConfig()


def plane_arg(text: str) -> int | None:
    """argparse type: a plane index, or None for 'all'."""
    try:
        return parse_plane(text)
    except RecordingError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None


def run(args: argparse.Namespace) -> int:
    from poco_core.live.extract import ExtractionSource

    out = Path(args.out)
    if out.resolve() == Path(args.source).resolve():
        raise PocoError(f"--out {out} would overwrite the frames")
    config = ExtractionConfig(max_shift=args.max_shift, reference_frames=args.reference_frames)
    if len(args.rois) > 1 and args.plane is not None:
        raise PocoError("several --rois (one segmentation per plane) need --plane all")
    rois = args.rois if len(args.rois) > 1 else args.rois[0]
    src = ExtractionSource(args.source, rois, out=out, fs=args.fs, follow=args.follow, config=config,
                           channel=args.channel, plane=args.plane, n_channels=args.channels, n_planes=args.planes)
    say = (lambda *a: None) if args.json else (lambda text: print(text, flush=True))  # noqa: E731
    stop = _stop_on_ctrl_c()
    shown, told, told_frames, last_frame = time.monotonic(), 0, 0, time.monotonic()
    try:
        while not stop.is_set():
            got = len(src.poll())
            for note in src.notes[told:]:
                say(f"note: {note}")
            told = len(src.notes)
            now = time.monotonic()
            if got:
                last_frame = now
            if now - shown >= 1.0 and src.n_frames > told_frames:
                shown, told_frames = now, src.n_frames
                dy, dx = src.last_shift or (0.0, 0.0)
                say(f"frame {src.n_frames - 1} · shift dy {dy:+.2f} dx {dx:+.2f} px · extracting at up to {src.rate_hz:.0f} frames/s · {src.status}")
            if not args.follow and src.frames.finished and not got:
                break
            if args.follow and args.idle_stop and now - last_frame > args.idle_stop:
                say(f"no new frame for {args.idle_stop:g} s: stopping")
                break
            if not got:
                time.sleep(0.002)
    finally:
        src.close()
    summary = src.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        ms = summary["ms_per_frame_median"]
        print(f"{out}: {summary['frames']} frames x {summary['rois']} ROIs ({summary['image_shape'][0]} x "
              f"{summary['image_shape'][1]} px, {summary['fs']:g} Hz); reference: {summary['reference']}")
        if summary["shift_dy"]:
            print(f"shifts: dy {summary['shift_dy'][0]:+.2f}..{summary['shift_dy'][1]:+.2f} px, "
                  f"dx {summary['shift_dx'][0]:+.2f}..{summary['shift_dx'][1]:+.2f} px; "
                  f"register+extract {ms:.2f} ms/frame (median), {summary['ms_per_frame_p99']:.2f} ms (p99)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "extract", help="register raw TIFF frames and extract ROI traces (F, neuropil) into a growing .h5",
        description="SOURCE is a multi-page TIFF or a folder of TIFF files (name order). Each frame is registered "
                    "rigidly to the segmentation's reference image and its ROI fluorescence and surround neuropil "
                    "are extracted with suite2p's conventions; OUT.h5 holds traces = raw F, extra_traces/Fneu and "
                    "per_frame/shift, and grows as frames arrive (follow it with `poco live`).")
    p.add_argument("source", type=Path, help="multi-page TIFF or folder of TIFF files")
    p.add_argument("--rois", required=True, action="append",
                   help="segmentation with ROI footprints: suite2p folder, NWB, CaImAn, project .h5; with --plane all, "
                        "a suite2p folder with plane0, plane1, ... or this option once per plane, in plane order")
    p.add_argument("--out", required=True, help="output project .h5 (written as it grows)")
    p.add_argument("--follow", action="store_true", help="keep following new files and pages until Ctrl-C")
    p.add_argument("--idle-stop", type=float, default=0, help="with --follow: stop after this many seconds without a new frame")
    p.add_argument("--fs", type=float, help="frame rate (default: ScanImage metadata, else the segmentation's)")
    p.add_argument("--channel", type=int, default=0, help="channel to extract (0-based)")
    p.add_argument("--plane", type=plane_arg, default=0,
                   help="plane to extract (0-based), or 'all': every plane with its own segmentation, as one recording")
    p.add_argument("--channels", type=int, help="interleaved channels per frame (default: ScanImage metadata, else 1)")
    p.add_argument("--planes", type=int, help="interleaved planes per volume (default: ScanImage metadata, else 1)")
    p.add_argument("--max-shift", type=float, default=DEFAULTS.max_shift,
                   help=f"largest shift searched, as a fraction of the frame side ({DEFAULTS.max_shift})")
    p.add_argument("--reference-frames", type=int, default=DEFAULTS.reference_frames,
                   help=f"frames averaged for a reference image when the segmentation has none ({DEFAULTS.reference_frames})")
    p.add_argument("--json", action="store_true", help="print the summary as JSON only")
    p.set_defaults(func=run)
