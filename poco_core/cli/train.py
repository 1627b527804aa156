"""`poco train DATA... --model NAME --steps N --out CKPT` (also `torchrun -m poco_core.cli.train`, DDP)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from poco_core.base.errors import PocoError
from poco_core.base.events import CancelToken
from poco_core.training.defaults import CV_DECISIVE_SE, CV_FOLDS, CV_FOLDS_SUGGESTED, TRAIN_DEFAULTS
from poco_core.cli.common import (
    add_loop_args,
    add_preprocess_args,
    drive,
    load_inputs,
    loop_kwargs,
    model_value,
    preprocess_config,
)
from poco_core.cli.safety import (
    add_force_arg,
    check_inputs,
    claim,
    non_negative_int,
    release,
    warn_unused,
)

DESCRIPTION = ("Train a forecaster on recordings (files, recording folders, dataset folders or manifests). "
               "Sessions are split into train/val/test blocks; the checkpoint with the lowest validation "
               "MSE is kept at --out.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="+", type=Path, help="recordings, folders or manifests")
    p.add_argument("--model", default="poco", help="model name from the registry (default poco)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint file to write (.pt)")
    p.add_argument("--context", type=int, default=None, help="context steps C (default: the model's, 48)")
    p.add_argument("--horizon", type=int, default=None, help="forecast steps P (default: the model's, 16)")
    p.add_argument("--set", dest="model_config", type=model_value, action="append", default=[], metavar="KEY=VALUE",
                   help="model config field, e.g. --set hidden=256 (repeatable)")
    p.add_argument("--resume", type=Path, default=None, help="continue from this checkpoint")
    p.add_argument("--cv-folds", type=non_negative_int, default=CV_FOLDS, metavar="K",
                   help="choose between POCO's MLP alone and POCO by K-fold cross-validation over the train + val "
                        f"frames (2K trainings; replaces the MLP warm-up; e.g. {CV_FOLDS_SUGGESTED}); the better mean "
                        "validation MSE is kept at --out (default off)")
    p.add_argument("--cv-decisive-se", type=decisive_se, default=CV_DECISIVE_SE, metavar="Z",
                   help="with --cv-folds: stop after the default split when its two runs' validation MSEs differ by more "
                        f"than Z standard errors (default {CV_DECISIVE_SE:g}; 'off' runs every fold)")
    add_force_arg(p)
    add_loop_args(p, TRAIN_DEFAULTS, warmup=True)
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
    from poco_core.training.crossval import crossval_events
    from poco_core.training.train import train_events

    if args.out.exists() and args.out.is_dir():
        raise PocoError(f"--out {args.out} is a folder; give a checkpoint file name")
    check_model_config(args.model, dict(args.model_config), args.context, args.horizon)
    check_crossval(args, dist)
    check_inputs(args.data)
    rank0 = dist is None or dist.rank == 0
    continuing = args.resume is not None and args.resume.exists() and args.resume.resolve() == args.out.resolve()
    lock = claim(args.out, "checkpoint", args.data, args.force or continuing) if rank0 else None
    try:
        token = CancelToken()
        options = loop_kwargs(args)
        if dist is not None:
            options["device"] = str(dist.device)
        recs = load_inputs(args.data)
        warn_unused(recs, args.neuropil_coef, args.iscell_only)
        common = dict(checkpoint=args.out, model_config=dict(args.model_config), preprocess=preprocess_config(args),
                      context=args.context, horizon=args.horizon, cancel=token, **options)
        if args.cv_folds:
            events = crossval_events(recs, args.model, folds=args.cv_folds, decisive_se=args.cv_decisive_se, **common)
        else:
            events = train_events(recs, args.model, resume=args.resume, dist=dist, **common)
        return drive(events, token, args.json, quiet=not rank0)
    finally:
        release(lock)


def decisive_se(text: str) -> float | None:
    """--cv-decisive-se: a number of standard errors >= 0, or 'off'."""
    if text == "off":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or 'off', got {text!r}")
    return value


def check_crossval(args: argparse.Namespace, dist: Any) -> None:
    """--cv-folds: at least 2, a fresh run of a model with FiLM conditioning, one process."""
    if not args.cv_folds:
        return
    if args.cv_folds < 2:
        raise PocoError(f"--cv-folds {args.cv_folds}: cross-validation needs at least 2 folds (0 turns it off)")
    if args.resume is not None:
        raise PocoError("--cv-folds trains 2K fresh runs; it cannot --resume a checkpoint")
    if dist is not None:
        raise PocoError("--cv-folds runs in one process; start it with `poco train`, not torchrun")
    from poco_core.models import SessionSpec, build_model

    if not build_model(args.model, [SessionSpec("check", "check", ["0", "1"])]).start_as_mlp():
        raise PocoError(f"--cv-folds chooses between POCO and its own MLP; --model {args.model} has no FiLM "
                        "conditioning (use poco or mlp_transformer)")


def check_model_config(model: str, config: dict[str, Any], context: int | None, horizon: int | None) -> None:
    """Build the model once on a one-unit session, so a bad --set is exit 2 before any data loads."""
    from poco_core.models import SessionSpec, available_models, build_model

    if model not in available_models():
        raise PocoError(f"--model {model!r} is not a known model; choose one of {', '.join(available_models())}")
    for name, value in (("--context", context), ("--horizon", horizon)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise PocoError(f"{name} must be a positive whole number, got {value!r}")
    overrides = {**config, **{k: v for k, v in (("context", context), ("horizon", horizon)) if v is not None}}
    try:
        build_model(model, [SessionSpec("check", "check", ["0", "1"])], **overrides)
    except PocoError as exc:
        raise PocoError(f"--set: {exc}") from None
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError, AssertionError) as exc:
        given = " ".join(f"{k}={v!r}" for k, v in config.items()) or "(none)"
        raise PocoError(f"--set {given}: not a valid {model} configuration ({type(exc).__name__}: {exc}); "
                        f"see the fields of the model's config") from None


def main(argv: list[str] | None = None) -> int:
    """torchrun entry point: `poco train` arguments, trained with DistributedDataParallel."""
    from poco_core.training.distributed import DistContext

    args = build_standalone_parser().parse_args(argv)
    with DistContext.from_env(args.device) as ctx:
        return run_command(args, dist=ctx)


if __name__ == "__main__":
    sys.exit(main())
