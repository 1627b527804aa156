"""`poco evaluate CKPT DATA... [--json] [--out table.csv]`: scores per session, with the copy baseline."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from poco_core.cli.common import add_precision_arg, describe_start, load_inputs, print_json
from poco_core.cli.safety import add_force_arg, check_inputs, claim, positive_int, release
from poco_core.training.validation import SMOOTH_FRAMES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score a trained model on recordings of its sessions",
        description="Prediction score (1 - MSE/MSE_copy), MSE and MAE per session, per dataset and overall "
        "(unweighted mean over sessions), next to three baselines (copy, each unit's training mean, and the "
        f"mean of the last {SMOOTH_FRAMES} context frames), on the chosen split.")
    p.add_argument("checkpoint", type=Path, help="a trained checkpoint (.pt)")
    p.add_argument("data", nargs="+", type=Path, help="recordings of sessions the model was trained on")
    p.add_argument("--split", choices=("train", "val", "test"), default="test")
    p.add_argument("--stride", type=positive_int, default=1, help="stride between evaluated windows (default 1)")
    p.add_argument("--device", default="auto")
    add_precision_arg(p, "fp32")
    p.add_argument("--out", type=Path, default=None, help="also write the table (.csv or .json)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    add_force_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from poco_core.analysis.evaluate import evaluate, table_to_csv, table_to_json
    from poco_core.base.device import resolve_device
    from poco_core.training.restore import load_model, prepare_for_model, rate_warnings

    check_inputs([args.checkpoint, *args.data])
    lock = claim(args.out, "text", [args.checkpoint, *args.data], args.force)
    try:
        device = resolve_device(args.device)
        model = load_model(args.checkpoint).to(device)
        recs = load_inputs(args.data)
        data = prepare_for_model(model, recs)
        warnings = rate_warnings(model, recs)
        report = {sd.session: sd.state.report() for sd in data.sessions}
        result = evaluate(model, data, args.split, stride=args.stride, device=device, precision=args.precision)
        rows = result.rows()
        if args.out is not None:
            (table_to_json if args.out.suffix.lower() == ".json" else table_to_csv)(rows, args.out)
    finally:
        release(lock)
    if args.json:
        print_json({**result.to_dict(), "table": rows, "warnings": warnings, "preprocess_report": report})
    else:
        describe_start({"fs": {sd.session: sd.state.fs for sd in data.sessions}, "context": model.config.context,
                        "horizon": model.config.horizon, "preprocess_report": report})
        for message in warnings:
            print(f"warning: {message}", file=sys.stderr)
        diagnoses = {name: m["diagnosis"] for name, m in result.sessions.items() if m.get("diagnosis")}
        sys.stdout.write(_format(rows, args.split, model.poco_meta.preprocess_config.zscore, diagnoses))
    return 0


UNITS = {True: "z-scored units (each ROI's preprocessing: mean 0, SD 1)", False: "the model's input units"}


def _format(rows: list[dict], split: str, zscored: bool, diagnoses: dict[str, str]) -> str:
    """The table with columns as wide as their longest entry, the split and units named above it."""
    head = ("model", "dataset", "session", "score", "vs mean", "vs smooth", "MSE", "MAE", "Pearson")
    keys = ("score", "mean_score", "smooth_score", "mse", "mae", "pearson")
    body = [(r["model"], r["dataset"], r["session"],
             *(f"{r.get(k, float('nan')):.3f}" if k != "mse" and k != "mae" else f"{r[k]:.4f}" for k in keys))
            for r in rows]
    widths = [max(len(c) for c in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    lines = [f"{split} split; MSE and MAE in {UNITS[zscored]}",
             f"score = 1 - MSE/MSE(copy: last context frame); vs mean: 1 - MSE/MSE(each unit's training mean); "
             f"vs smooth: 1 - MSE/MSE(mean of the last {SMOOTH_FRAMES} context frames); Pearson: r of forecast and "
             "actual per unit, averaged (CalM's metric)", line(head)]
    lines += [line(b) for b in body]
    lines += [f"note ({name}): {text}" for name, text in diagnoses.items()]
    return "\n".join(lines) + "\n"
