"""`poco circuit`: fit a data-constrained RNN (CURBD, or PINning with --p < 1) to a recording, or
show a saved fit (`--show circuit.h5`): free-run pVar and the strongest region-to-region currents."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from poco_core.base.errors import PocoError
from poco_core.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    _GracefulInterrupt,
    print_json,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    from poco_core.models.circuit_rnn import CircuitConfig

    d = CircuitConfig()
    p = subparsers.add_parser(
        "circuit",
        help="fit a data-constrained RNN (CURBD / PINning) and decompose region currents",
        description="Fit a rate network with one unit per ROI by recursive least squares (CURBD with p = 1, "
        "PINning with p < 1). The fit reported is the free-run pVar (J frozen). J is one of many that "
        "reproduce the data: it is not the true connectivity.",
    )
    p.add_argument("data", nargs="?", type=Path, help="a recording (any format poco reads)")
    p.add_argument("--out", type=Path, help="HDF5 file for the fit (required unless --show)")
    p.add_argument("--show", type=Path, metavar="CIRCUIT_H5", help="print the summary of a saved fit")
    p.add_argument("--p", type=float, default=d.plastic_fraction, help="plastic fraction (default 1 = CURBD)")
    p.add_argument("--runs", type=int, default=d.n_train, help=f"training runs (default {d.n_train})")
    p.add_argument("--tau-ms", type=float, default=d.tau_s * 1000, help=f"unit time constant in ms (default {d.tau_s * 1000:g})")
    p.add_argument("--g", type=float, default=d.g, help=f"initial gain (default {d.g})")
    p.add_argument("--p0", type=float, default=d.p0, help=f"P0 = 1/ridge (default {d.p0})")
    p.add_argument("--dt-factor", type=int, default=None, help="RNN sub-steps per frame (default ceil(10 dtData/tau))")
    p.add_argument("--reset-every", type=int, default=0, help="reset the state from the data every N frames (0: start only)")
    p.add_argument("--free-every", type=int, default=d.free_every, help=f"free-run pVar every N runs (default {d.free_every})")
    p.add_argument("--lowpass-hz", type=float, default=None, help="zero-phase low-pass of the targets")
    p.add_argument("--no-zscore", action="store_true", help="use the traces as they are (already rates/dF/F)")
    p.add_argument("--fs", type=float, default=None, help="sampling rate in Hz (overrides the file's)")
    p.add_argument("--max-frames", type=int, default=None, help="fit only the first N frames")
    p.add_argument("--groups", type=Path, metavar="EMBED_TABLE",
                   help="group ROIs by the clusters of an embedding analysis (the .csv/.h5 `poco embed --out` writes) "
                        "instead of the recording's regions or assemblies")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    p.add_argument("--checkpoint", type=Path, help="save the fit state here every --free-every runs")
    p.add_argument("--resume", type=Path, help="continue from a --checkpoint file")
    p.add_argument("--json", action="store_true", help="JSON lines of progress; the last line is the summary (pvar)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.show is not None:
        return show(args.show, args.json)
    if args.data is None or args.out is None:
        raise PocoError("give DATA and --out circuit.h5 (or --show circuit.h5)")
    from poco_core.analysis.circuit import DataPrep, circuit_events
    from poco_core.base.events import CancelToken
    from poco_core.data.io import load_recording
    from poco_core.models.circuit_rnn import CircuitConfig

    opts = {"fs": args.fs} if args.fs else {}
    rec = load_recording(args.data, **opts)
    config = CircuitConfig(tau_s=args.tau_ms / 1000, g=args.g, plastic_fraction=args.p, p0=args.p0, n_train=args.runs,
                           free_every=args.free_every, reset_every=args.reset_every, dt_factor=args.dt_factor,
                           seed=args.seed, device=args.device)
    prep = DataPrep(standardize="none" if args.no_zscore else "zscore", lowpass_hz=args.lowpass_hz, max_frames=args.max_frames)
    token = CancelToken()
    done = None
    with _GracefulInterrupt(token):
        for ev in circuit_events(rec, config, prep=prep, groups=args.groups, out=args.out, checkpoint=args.checkpoint,
                                 resume=args.resume, cancel=token):
            if ev["type"] == "done":
                done = ev
                continue
            if args.json:
                print_json(ev)
            elif ev["type"] == "start":
                est = ev["estimate"]
                _err(f"{ev['n_units']} units x {ev['n_frames']} frames, {ev['dt_factor']} sub-steps per frame; "
                     f"estimate {est['seconds']:.0f} s, {est['bytes'] / 2**20:.0f} MiB")
                for w in ev["warnings"]:
                    _err(f"warning: {w}")
            elif ev["type"] == "validation":
                _err(f"run {ev['step']}/{config.n_train}: free-run pVar {ev['pvar_free']:.3f}")
    if done is None or done["cancelled"]:
        if args.json:
            print_json({"type": "done", "cancelled": True, "checkpoint": done and done["checkpoint"]})
        _err("cancelled" + (f"; resume with --resume {args.checkpoint}" if args.checkpoint else ""))
        return EXIT_INTERRUPTED
    summary = {"type": "summary", **done["summary"], "path": done["path"], "time_s": done["time_s"]}
    if args.json:
        print_json(summary)
    else:
        print(describe(summary))
    return EXIT_OK


def show(path: Path, as_json: bool) -> int:
    from poco_core.analysis.circuit import CircuitFit

    summary = {"type": "summary", **CircuitFit.load(path).summary(), "path": str(path)}
    if as_json:
        print_json(summary)
    else:
        print(describe(summary))
    return EXIT_OK


def describe(s: dict) -> str:
    lines = [f"{s['n_units']} units x {s['n_frames']} frames, p = {s['plastic_fraction']:g}, {s['runs']} runs",
             (f"free-run pVar {s['pvar']:.3f} (median per neuron {s['median_pvar_per_neuron']:.3f}); "
              f"groups: {', '.join(s['regions'])} ({s['region_source']})"),
             "strongest currents (rms, model units):"]
    lines += [f"  {c['source']} -> {c['target']}: {c['rms']:.3f}" for c in s["strongest_currents"]]
    lines += ["caveat: " + s["caveats"][0]]
    if s.get("path"):
        lines.append(f"saved {s['path']}")
    return "\n".join(lines)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
