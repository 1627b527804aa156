"""Pieces the engine commands (train, evaluate, finetune, forecast) share: reading DATA
arguments, option groups, and turning an event stream into progress output and an exit code.

Progress: a tqdm bar on a terminal, plain validation lines otherwise, or -- with ``--json`` --
one JSON object per event on stdout. The first Ctrl-C (or SIGTERM, as sent by `kill`, `timeout`
and cluster schedulers) asks the run to stop at its next step (the best checkpoint is kept, or
the current weights with a note when none was validated yet; exit code 130); a second one
interrupts at once.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from poco_core.base.events import CancelToken, Event
from poco_core.cli.safety import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)

EXIT_OK, EXIT_INTERRUPTED = 0, 130


def load_inputs(paths: list[Path]) -> list:
    """Recordings from files, recording folders, dataset folders or manifests, in order."""
    from poco_core.data.io import load_dataset, load_recording

    recs = []
    for path in paths:
        if path.is_dir() or path.suffix.lower() in (".yaml", ".yml", ".json"):
            recs.extend(load_dataset(path))
        else:
            recs.append(load_recording(path))
    return recs


def add_loop_args(p: argparse.ArgumentParser, steps: int, val_every: int, max_val_windows: int | None = None) -> None:
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=non_negative_int, default=steps, help=f"optimisation steps (default {steps})")
    g.add_argument("--batch-size", type=positive_int, default=64, help="windows per step and dataset (default 64)")
    g.add_argument("--lr", type=positive_float, default=3e-4, help="AdamW learning rate (default 3e-4)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    g.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CUDA only)")
    g.add_argument("--val-every", type=positive_int, default=val_every, help=f"validate every N steps (default {val_every})")
    g.add_argument("--val-stride", type=positive_int, default=1, help="stride between validation windows (default 1)")
    g.add_argument("--max-val-windows", type=positive_int, default=max_val_windows,
                   help=f"cap on validation windows per session (default {max_val_windows or 'all'})")
    p.add_argument("--json", action="store_true", help="print one JSON object per event on stdout")


def loop_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
            "device": args.device, "bf16": args.bf16, "val_every": args.val_every,
            "val_stride": args.val_stride, "max_val_windows": args.max_val_windows}


def add_precision_arg(p: argparse.ArgumentParser, default: str) -> None:
    """``--precision`` for commands that forecast (see poco_core.models.inference)."""
    from poco_core.models.inference import PRECISIONS

    p.add_argument("--precision", choices=PRECISIONS, default=default,
                   help="forecast arithmetic: auto = bfloat16 where the CPU/GPU computes it natively (2-3x faster, "
                        f"scores within 0.001 of fp32), else fp32; fp32 = exact (default {default})")


def add_preprocess_args(p: argparse.ArgumentParser) -> None:
    from poco_core.data.filters import FILTERS

    g = p.add_argument_group("preprocessing")
    g.add_argument("--dff", action="store_true", help="dF/F before z-scoring")
    g.add_argument("--no-zscore", action="store_true", help="keep the traces' scale")
    g.add_argument("--filter", choices=FILTERS, default="none")
    g.add_argument("--pca-k", type=positive_int, default=None, help="keep the first K principal components")
    g.add_argument("--fit-on", choices=("all", "train"), default="all", help="fit statistics on all frames (paper) or the training split")
    g.add_argument("--neuropil-coef", type=float, default=None, help="subtract coef x Fneu (Suite2p)")
    g.add_argument("--iscell-only", action="store_true", help="keep only ROIs classified as cells")
    g.add_argument("--block-len", type=positive_int, default=1000, help="split block length in frames (default 1000)")
    g.add_argument("--split", type=non_negative_float, nargs=3, default=(3, 1, 1), metavar=("TRAIN", "VAL", "TEST"))


def preprocess_config(args: argparse.Namespace):
    from poco_core.data.preprocess import PreprocessConfig

    return PreprocessConfig(dff=args.dff, zscore=not args.no_zscore, filter=args.filter, pca_k=args.pca_k,
                            fit_on=args.fit_on, neuropil_coef=args.neuropil_coef, iscell_only=args.iscell_only,
                            block_len=args.block_len, split=tuple(args.split))


def print_json(obj: Any) -> None:
    print(json.dumps(obj, default=_plain), flush=True)


def _plain(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


class _GracefulInterrupt:
    """First SIGINT or SIGTERM sets the token; the second raises KeyboardInterrupt as usual."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, token: CancelToken):
        self.token = token

    def __enter__(self) -> "_GracefulInterrupt":
        self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.token.is_set():
            raise KeyboardInterrupt
        self.token.cancel()
        what = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\n{what}: stopping after this step and keeping the best checkpoint (Ctrl-C again to abort)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        for s, previous in self.previous.items():
            signal.signal(s, previous)


def drive(events: Iterator[Event], token: CancelToken, as_json: bool, quiet: bool = False) -> int:
    """Consume a run's events with progress output; the exit code says finished or interrupted."""
    done: Event | None = None
    bar = None
    with _GracefulInterrupt(token), _reported(as_json):
        for event in events:
            kind = event["type"]
            if kind == "done":
                done = event
            if quiet:
                continue
            if as_json:
                print_json(event)
            elif kind == "start":
                bar = _bar(event)
            elif kind == "step" and bar is not None:
                bar.update(event["step"] - bar.n)
                bar.set_postfix(loss=f"{event['loss']:.4f}", refresh=False)
            elif kind == "validation":
                line = f"step {event['step']}: val MSE {event['val_mse']:.4f}, score {event['val_score']:.3f}" + (" (best)" if event["best"] else "")
                (bar.write if bar is not None else _stderr)(line)
        if bar is not None:
            bar.close()
    if done and done["cancelled"] and not as_json and not quiet:
        _stderr(f"{done.get('note', 'cancelled')}; saved {done['checkpoint']}")
    elif done and not as_json and not quiet:
        test = done.get("test", {})
        _stderr(f"best step {done['best_step']} (val MSE {done['best_val_mse']:.4f}); test score "
                f"{test.get('score', float('nan')):.3f}, MSE {test.get('mse', float('nan')):.4f}; saved {done['checkpoint']}")
    return EXIT_INTERRUPTED if done is None or done["cancelled"] else EXIT_OK


@contextmanager
def _reported(as_json: bool) -> Iterator[None]:
    """With --json, a failure also appears on stdout as an `error` event before it propagates."""
    try:
        yield
    except Exception as exc:
        if as_json:
            print_json({"type": "error", "message": str(exc) or type(exc).__name__, "error": type(exc).__name__})
        raise


def _bar(start: Event):
    if not sys.stderr.isatty():
        _stderr(f"{start['kind']}: {start['total_steps']} steps on {start['device']}, sessions {', '.join(start['sessions'])}")
        return None
    from tqdm import tqdm

    return tqdm(total=start["total_steps"], initial=start["start_step"], desc=start["kind"], unit="step", file=sys.stderr)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
