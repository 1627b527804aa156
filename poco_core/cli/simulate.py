"""`poco simulate`: write a synthetic recording or cohort, or regenerate sample_data/."""
from __future__ import annotations

import argparse
from pathlib import Path

from poco_core.base.errors import PocoError
from poco_core.cli.live import add_live_options, replay_command
from poco_core.cli.safety import (
    add_force_arg,
    claim,
    non_negative_int,
    positive_float,
    positive_int,
    release,
)
from poco_core.data.simulate import (
    make_sample_data,
    simulate_cohort,
    simulate_recording,
    write_cohort,
)


def _counts(text: str) -> list[int]:
    try:
        return [positive_int(v) for v in text.split(",")]
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"expected an ROI count or comma-separated counts, got {text!r}")


def live_frames_command(args: argparse.Namespace) -> int:
    """`poco simulate --live-frames FOLDER`: a synthetic movie written as TIFF files at --fs, and its segmentation."""
    from pathlib import Path

    from poco_core.cli.live import _stop_on_ctrl_c
    from poco_core.data.io import save_recording
    from poco_core.data.movie import movie_segmentation, render_frames, write_tiff_frames

    folder = Path(args.live_frames)
    rec = simulate_recording(args.rois[0], args.frames, args.regions, args.seed, args.calcium, args.fs,
                             image_shape=(args.image_size, args.image_size))
    rois = Path(args.out or folder.with_name(folder.name + "_rois.h5"))
    save_recording(movie_segmentation(rec, args.photons), rois)
    print(f"segmentation ({rec.n_rois} ROIs, {args.image_size} x {args.image_size} px): {rois}")
    print(f"writing {rec.n_frames} frames into {folder}/ at {args.fs:g} Hz, {args.frames_per_file} per file (Ctrl-C stops)")
    n = write_tiff_frames(render_frames(rec, args.photons, seed=args.seed), folder, args.fs, args.frames_per_file,
                          cancel=_stop_on_ctrl_c())
    print(f"{folder}: {n} frames written")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.live:
        return replay_command(args)
    if args.live_frames:
        return live_frames_command(args)
    if args.sample_data:
        paths = make_sample_data(args.sample_data)
    elif args.out is None:
        raise PocoError("give --out PATH (or --sample-data DIR)")
    elif args.sessions == 1:
        if len(args.rois) != 1:
            raise PocoError(f"one session takes one ROI count, got {len(args.rois)}")
        lock = claim(args.out, "recording", [], args.force)
        try:
            rec = simulate_recording(args.rois[0], args.frames, args.regions, args.seed, args.calcium, args.fs)
            from poco_core.data.io import save_recording

            paths = [save_recording(rec, args.out)]
        finally:
            release(lock)
    else:
        folder = Path(args.out)
        if folder.exists() and not folder.is_dir():
            raise PocoError(f"{folder}: a cohort is written into a folder, and this is a file; choose another --out")
        rois = args.rois * args.sessions if len(args.rois) == 1 else args.rois
        recs = simulate_cohort(args.sessions, rois, args.frames, args.sigma_j, args.regions, args.seed,
                               args.calcium, args.fs)
        targets = [(folder / f"{r.session}.h5", "recording") for r in recs]
        targets += [(folder / name, "text") for name in ("manifest.json", "heldout.json")]
        locks = [claim(path, kind, [], args.force) for path, kind in targets]
        try:
            paths = write_cohort(recs, args.out, args.held_out)
        finally:
            release(*locks)
    for path in paths:
        print(path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate", help="write a synthetic recording (chaotic RNN) or a cohort of similar individuals",
        description="One session writes one POCO .h5 file to --out; several write a folder with one "
                    "file per session and manifest.json (poco train accepts the manifest).")
    p.add_argument("--out", help="output .h5 file (one session) or folder (cohort)")
    p.add_argument("--rois", type=_counts, default=[300], help="ROIs per session, or one count per session: 120,150,... (default 300)")
    p.add_argument("--frames", type=positive_int, default=4096, help="frames per session (default 4096)")
    p.add_argument("--sessions", type=positive_int, default=1, help="number of individuals (default 1)")
    p.add_argument("--sigma-j", type=float, default=0.1, help="how much individuals' connectivity differs, 0..1 (default 0.1)")
    p.add_argument("--held-out", type=non_negative_int, default=0, help="last N sessions listed in heldout.json instead of manifest.json")
    p.add_argument("--regions", type=positive_int, default=4, help="number of brain regions 1..4 (1 = the paper's homogeneous RNN)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--calcium", action="store_true", help="fluorescence through a calcium kernel instead of z-scored rates")
    p.add_argument("--fs", type=positive_float, default=5.0, help="frame rate the frames are labelled with (default 5 Hz)")
    p.add_argument("--sample-data", metavar="DIR", help="regenerate the repository's sample_data/ into DIR")
    add_force_arg(p)
    add_live_options(p)
    g = p.add_argument_group("live frames (raw TIFF movie for `poco extract`)")
    g.add_argument("--live-frames", metavar="FOLDER", help="write a rendered movie as TIFF files into FOLDER at --fs frames/s, "
                                                        "and its segmentation to --out (default FOLDER_rois.h5)")
    g.add_argument("--frames-per-file", type=int, default=100, help="pages per TIFF file (default 100)")
    g.add_argument("--image-size", type=int, default=256, help="frame side in pixels (default 256)")
    g.add_argument("--photons", type=float, default=30.0, help="mean photon count of the brightest ROI pixel (default 30)")
    p.set_defaults(func=run)
