"""`poco train DATA... --model NAME --steps N --out CKPT` (also `torchrun -m poco_core.cli.train`, DDP)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from poco_core.base.errors import PocoError
from poco_core.base.events import CancelToken
from poco_core.cli.common import (
    add_loop_args,
    add_preprocess_args,
    drive,
    load_inputs,
    loop_kwargs,
    preprocess_config,
)

DESCRIPTION = ("Train a forecaster on recordings (files, recording folders, dataset folders or manifests). "
               "Sessions are split into train/val/test blocks; the checkpoint with the lowest validation "
               "MSE is kept at --out.")


def _model_value(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.replace("-", "_"), json.loads(raw)
    except json.JSONDecodeError:
        return key.replace("-", "_"), raw


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="+", type=Path, help="recordings, folders or manifests")
    p.add_argument("--model", default="poco", help="model name from the registry (default poco)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint file to write (.pt)")
    p.add_argument("--context", type=int, default=None, help="context steps C (default: the model's, 48)")
    p.add_argument("--horizon", type=int, default=None, help="forecast steps P (default: the model's, 16)")
    p.add_argument("--set", dest="model_config", type=_model_value, action="append", default=[], metavar="KEY=VALUE",
                   help="model config field, e.g. --set hidden=256 (repeatable)")
    p.add_argument("--resume", type=Path, default=None, help="continue from this checkpoint")
    add_loop_args(p, steps=None, val_every=None)
    add_preprocess_args(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a forecaster", description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(func=run_command)


def build_standalone_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchrun -m poco_core.cli.train", description=DESCRIPTION + " Run under torchrun for DDP.")
    add_arguments(p)
    return p


def run_command(args: argparse.Namespace, dist: Any = None) -> int:
    from poco_core.training.train import train_events

    if args.out.exists() and args.out.is_dir():
        raise PocoError(f"--out {args.out} is a folder; give a checkpoint file name")
    token = CancelToken()
    options = loop_kwargs(args)
    if dist is not None:
        options["device"] = str(dist.device)
    events = train_events(
        load_inputs(args.data), args.model, checkpoint=args.out, model_config=dict(args.model_config),
        preprocess=preprocess_config(args), context=args.context, horizon=args.horizon, resume=args.resume,
        cancel=token, dist=dist, **options,
    )
    return drive(events, token, args.json, quiet=dist is not None and dist.rank != 0)


def main(argv: list[str] | None = None) -> int:
    """torchrun entry point: `poco train` arguments, trained with DistributedDataParallel."""
    from poco_core.training.distributed import DistContext

    args = build_standalone_parser().parse_args(argv)
    with DistContext.from_env(args.device) as ctx:
        return run_command(args, dist=ctx)


if __name__ == "__main__":
    sys.exit(main())
