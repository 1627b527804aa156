"""`poco evaluate CKPT DATA... [--json] [--out table.csv]`: scores per session, with the copy baseline."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from poco_core.cli.common import add_precision_arg, load_inputs, print_json
from poco_core.cli.safety import (
    add_force_arg,
    check_inputs,
    claim,
    positive_int,
    release,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score a trained model on recordings of its sessions",
        description="Prediction score (1 - MSE/MSE_copy), MSE and MAE per session, per dataset and overall "
        "(unweighted mean over sessions), next to the copy baseline, on the chosen split.")
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
    from poco_core.training.restore import load_model, prepare_for_model

    check_inputs([args.checkpoint, *args.data])
    lock = claim(args.out, "text", [args.checkpoint, *args.data], args.force)
    try:
        device = resolve_device(args.device)
        model = load_model(args.checkpoint).to(device)
        result = evaluate(model, prepare_for_model(model, load_inputs(args.data)), args.split, stride=args.stride,
                          device=device, precision=args.precision)
        rows = result.rows()
        if args.out is not None:
            (table_to_json if args.out.suffix.lower() == ".json" else table_to_csv)(rows, args.out)
    finally:
        release(lock)
    if args.json:
        print_json({**result.to_dict(), "table": rows})
    else:
        sys.stdout.write(_format(rows))
    return 0


def _format(rows: list[dict]) -> str:
    lines = [f"{'model':<12} {'dataset':<14} {'session':<20} {'score':>7} {'MSE':>9} {'MAE':>9}"]
    for r in rows:
        lines.append(f"{r['model']:<12} {r['dataset']:<14} {r['session']:<20} {r['score']:>7.3f} {r['mse']:>9.4f} {r['mae']:>9.4f}")
    return "\n".join(lines) + "\n"
