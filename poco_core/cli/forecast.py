"""`poco forecast CKPT DATA --t T [--t-stop T2 --step S] [--out file.npz | --json]`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from poco_core.base.errors import PocoError
from poco_core.base.outputs import atomic_path
from poco_core.cli.common import add_precision_arg, load_inputs, print_json
from poco_core.cli.safety import (
    add_force_arg,
    check_inputs,
    claim,
    non_negative_int,
    positive_int,
    release,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "forecast", help="forecast the next steps of every ROI",
        description="Forecast the P steps after frame T from the C frames ending at T (inclusive), for every "
        "unit, in z-scored and original units. With --t-stop, forecasts for every T in [T, T2) by --step.")
    p.add_argument("checkpoint", type=Path, help="a trained (or finetuned) checkpoint (.pt)")
    p.add_argument("data", type=Path, help="a recording of a session the model knows (or a dataset: see --session)")
    p.add_argument("--t", type=non_negative_int, required=True, help="last context frame (0-based)")
    p.add_argument("--t-stop", type=int, default=None, help="rolling forecasts up to (excluding) this frame")
    p.add_argument("--step", type=positive_int, default=1, help="frames between rolling forecasts (default 1)")
    p.add_argument("--session", default=None, help="which session, when DATA holds several")
    p.add_argument("--device", default="auto")
    add_precision_arg(p, "auto")
    p.add_argument("--out", type=Path, default=None, help="write arrays to a .npz file")
    p.add_argument("--json", action="store_true", help="print the forecast as JSON")
    add_force_arg(p)
    p.set_defaults(func=run)


def _pick(recs: list, session: str | None):
    if session is not None:
        recs = [r for r in recs if r.session == session]
    if len(recs) != 1:
        names = ", ".join(r.session for r in recs) or "none"
        raise PocoError(f"DATA must give exactly one recording (found: {names}); choose one with --session")
    return recs[0]


def run(args: argparse.Namespace) -> int:
    from poco_core.analysis.forecast import rolling_forecast
    from poco_core.base.device import resolve_device
    from poco_core.training.restore import load_model

    check_inputs([args.checkpoint, args.data])
    lock = claim(args.out, "npz", [args.checkpoint, args.data], args.force)
    try:
        model = load_model(args.checkpoint).to(resolve_device(args.device))
        rec = _pick(load_inputs([args.data]), args.session)
        fc = rolling_forecast(model, rec, args.t, args.t + 1 if args.t_stop is None else args.t_stop, args.step,
                              precision=args.precision)
        arrays = {"t": fc.t, "frames": fc.frames, "time_s": fc.time_s, "fs": np.float64(fc.fs), "bin": np.int64(fc.bin),
                  "z": fc.z, "unit_ids": np.array(fc.unit_ids)}
        if fc.values is not None:
            arrays["values"] = fc.values
        if args.out is not None:
            with atomic_path(args.out) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
            print(f"wrote {args.out}: {len(fc.t)} forecast(s) x {fc.z.shape[1]} steps x {fc.z.shape[2]} units of session "
                  f"{fc.session} at {fc.fs:.4g} Hz; arrays {', '.join(arrays)} (z: z-scored units"
                  f"{', values: the recording units' if fc.values is not None else ''}; time_s: seconds from the start)",
                  file=sys.stderr)
    finally:
        release(lock)
    if args.json:
        print_json({"session": fc.session, **arrays})
    elif args.out is None:
        print(f"session {fc.session}: {len(fc.t)} forecast(s) of {fc.z.shape[1]} steps for {fc.z.shape[2]} units; "
              "use --out file.npz or --json for the values", file=sys.stderr)
    return 0
