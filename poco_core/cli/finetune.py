"""`poco finetune CKPT DATA... --mode embeddings --steps N --out CKPT2`."""
from __future__ import annotations

import argparse
from pathlib import Path

from poco_core.base.events import CancelToken
from poco_core.cli.common import add_loop_args, drive, load_inputs, loop_kwargs, model_value
from poco_core.cli.safety import add_force_arg, check_inputs, claim, release
from poco_core.training.defaults import FINETUNE_DEFAULTS, FINETUNE_MODES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "finetune", help="adapt a trained model to new recordings",
        description="Add the new sessions' unit and session embeddings to a trained model and train them "
        "(mode embeddings), also the MLP (embeddings+mlp), or everything (all). New recordings are "
        "preprocessed with the checkpoint's preprocessing settings.")
    p.add_argument("checkpoint", type=Path, help="the pretrained checkpoint (.pt)")
    p.add_argument("data", nargs="+", type=Path, help="the new recordings, folders or manifests")
    p.add_argument("--mode", choices=FINETUNE_MODES, default="embeddings")
    p.add_argument("--out", type=Path, required=True, help="checkpoint file to write (.pt)")
    p.add_argument("--set", dest="model_config", type=model_value, action="append", default=[], metavar="KEY=VALUE",
                   help="a setting that may change after training, e.g. CalM's --set temperature=0.8 (repeatable)")
    add_force_arg(p)
    add_loop_args(p, FINETUNE_DEFAULTS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from poco_core.training.finetune import finetune_events

    check_inputs([args.checkpoint, *args.data])
    lock = claim(args.out, "checkpoint", [args.checkpoint, *args.data], args.force)
    try:
        token = CancelToken()
        events = finetune_events(args.checkpoint, load_inputs(args.data), mode=args.mode, checkpoint=args.out,
                                 model_config=dict(args.model_config), cancel=token, **loop_kwargs(args))
        return drive(events, token, args.json)
    finally:
        release(lock)
