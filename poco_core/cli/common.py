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
PROGRESS_EVERY_S = 30.0  # without a terminal (no tqdm bar), a progress line at most this often


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


def add_loop_args(p: argparse.ArgumentParser, defaults: dict[str, Any], warmup: bool = False) -> None:
    """Optimisation options; `defaults` is TRAIN_DEFAULTS or FINETUNE_DEFAULTS (training/defaults.py).
    ``None`` for steps/val_every: the loop's automatic choice (see training.defaults). ``warmup``:
    the MLP warm-up options too (training only: a finetuned model's conditioning is already trained)."""
    from poco_core.training.defaults import (COND_LR_SCALE, MLP_WARMUP, MLP_WARMUP_FRACTION, MLP_WARMUP_SE, PATIENCE,
                                             PATIENCE_MIN_STEPS, TRAIN_STEPS, VAL_EVERY_MAX, VALIDATIONS_PER_EPOCH)

    steps, val_every, max_val_windows = defaults["steps"], defaults["val_every"], defaults["max_val_windows"]
    steps_help = steps if steps is not None else "{single_session} for one session, {multi_session} for several".format(**TRAIN_STEPS)
    val_help = val_every if val_every is not None else (
        f"{VALIDATIONS_PER_EPOCH} per pass over the training windows, at most {VAL_EVERY_MAX} steps apart")
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=non_negative_int, default=steps, help=f"optimisation steps (default {steps_help})")
    g.add_argument("--batch-size", type=positive_int, default=defaults["batch_size"],
                   help=f"windows per step and dataset (default {defaults['batch_size']})")
    g.add_argument("--lr", type=positive_float, default=defaults["lr"], help=f"AdamW learning rate (default {defaults['lr']:g})")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    g.add_argument("--bf16", action="store_true", help="bfloat16 autocast with fp32 master weights (CUDA, and CPUs with native bf16: "
                   "AVX512-BF16 or AMX; slower than fp32 on other CPUs)")
    g.add_argument("--val-every", type=positive_int, default=val_every, help=f"validate every N steps (default {val_help})")
    g.add_argument("--patience", type=non_negative_int, default=PATIENCE,
                   help=f"stop after N validations (and at least {PATIENCE_MIN_STEPS} steps) without a lower validation "
                        f"MSE; 0 never stops early (default {PATIENCE})")
    g.add_argument("--cond-lr-scale", type=positive_float, default=COND_LR_SCALE,
                   help=f"learning-rate factor for the population conditioning (encoder, embeddings, FiLM maps) "
                        f"against the MLP (default {COND_LR_SCALE:g}: one rate)")
    g.add_argument("--embedding-lr-scale", type=positive_float, default=defaults["embedding_lr_scale"],
                   help="learning-rate factor for the unit and session embeddings on top of --cond-lr-scale "
                        f"(default {defaults['embedding_lr_scale']:g})")
    if warmup:
        g.add_argument("--mlp-warmup", action=argparse.BooleanOptionalAction, default=MLP_WARMUP,
                       help="train POCO's MLP alone first (conditioning frozen at alpha = 1, beta = 0: the model is its "
                            "MLP) until the validation stops improving, then everything from that best "
                            f"(default {'on' if MLP_WARMUP else 'off'}; no effect on models without FiLM)")
        g.add_argument("--mlp-warmup-steps", type=positive_int, default=None,
                       help=f"cap on the warm-up's steps (default {MLP_WARMUP_FRACTION:g} x --steps)")
        g.add_argument("--mlp-warmup-se", type=non_negative_float, default=MLP_WARMUP_SE,
                       help="after the warm-up, a model replaces the MLP only if its validation MSE is lower by more "
                            f"than this many standard errors; 0 takes any lower MSE (default {MLP_WARMUP_SE:g})")
    g.add_argument("--train-stride", type=positive_int, default=1,
                   help="frames between the starts of training windows (default 1: every window; the context + "
                        "horizon length makes an epoch one pass over the frames, for recordings too long for every window)")
    g.add_argument("--val-stride", type=positive_int, default=1, help="stride between validation windows (default 1)")
    g.add_argument("--max-val-windows", type=positive_int, default=max_val_windows,
                   help=f"cap on validation windows per session (default {max_val_windows or 'all'})")
    p.add_argument("--json", action="store_true", help="print one JSON object per event on stdout")


def loop_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
            "device": args.device, "bf16": args.bf16, "val_every": args.val_every,
            "train_stride": args.train_stride, "val_stride": args.val_stride, "max_val_windows": args.max_val_windows,
            "patience": args.patience, "cond_lr_scale": args.cond_lr_scale,
            "embedding_lr_scale": args.embedding_lr_scale,
            **{k: getattr(args, k) for k in ("mlp_warmup", "mlp_warmup_steps", "mlp_warmup_se") if hasattr(args, k)}}


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
    g.add_argument("--bin-frames", type=positive_int, default=1, help="average every N frames into one (default 1: none)")
    g.add_argument("--target-fs", type=positive_float, default=None,
                   help="bin to this rate in Hz, by the nearest whole factor (e.g. 30 Hz -> 5 Hz bins 6 frames)")


def preprocess_config(args: argparse.Namespace):
    from poco_core.data.preprocess import PreprocessConfig

    return PreprocessConfig(dff=args.dff, zscore=not args.no_zscore, filter=args.filter, pca_k=args.pca_k,
                            fit_on=args.fit_on, neuropil_coef=args.neuropil_coef, iscell_only=args.iscell_only,
                            block_len=args.block_len, split=tuple(args.split), bin_frames=args.bin_frames,
                            target_fs=args.target_fs)


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
    last_line, total = 0.0, 0
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
                describe_start(event)
                bar, total = _bar(event), event["total_steps"]
            elif kind == "warning":
                (bar.write if bar is not None else _stderr)(f"warning: {event['message']}")
            elif kind in ("stage", "crossval_run", "crossval_settled") and event.get("note"):
                (bar.write if bar is not None else _stderr)(event["note"])
                if kind == "crossval_settled":  # the budget shrinks to the runs made
                    total = event["total_steps"]
                    if bar is not None:
                        bar.total = total
                        bar.refresh()
            elif kind == "step" and bar is not None:
                bar.update(event["step"] - bar.n)
                bar.set_postfix(loss=f"{event['loss']:.4f}", refresh=False)
            elif kind == "step" and event.get("elapsed_s", 0.0) - last_line >= PROGRESS_EVERY_S:
                last_line = event["elapsed_s"]
                _stderr(progress_line(event, total))
            elif kind == "validation":
                line = f"step {event['step']}: val MSE {event['val_mse']:.4f}, score {event['val_score']:.3f}" + (" (best)" if event["best"] else "")
                mean = event.get("mean") or {}
                if mean.get("mean_score") is not None:
                    line += f" (vs mean {mean['mean_score']:.3f}, vs smoothed copy {mean['smooth_score']:.3f})"
                if "vs_mlp" in event:
                    gate = event["vs_mlp"]
                    line += f"; {gate['gain']:+.4f} below the warmed-up MLP (needs > {gate['needed']:.4f})"
                (bar.write if bar is not None else _stderr)(line)
        if bar is not None:
            bar.close()
    if done and done["cancelled"] and not as_json and not quiet:
        _stderr(f"{done.get('note', 'cancelled')}; saved {done['checkpoint']}")
        if done.get("kept_note"):
            _stderr(done["kept_note"])
    elif done and not as_json and not quiet:
        test = done.get("test", {})
        if done.get("stopped_early"):
            _stderr(done["stop_reason"])
        _stderr(f"best step {done['best_step']} (val MSE {done['best_val_mse']:.4f}); test score "
                f"{test.get('score', float('nan')):.3f}, MSE {test.get('mse', float('nan')):.4f}; saved {done['checkpoint']}")
        if done.get("kept_note"):
            _stderr(done["kept_note"])
        if "mean_mse" in test:
            _stderr(f"test baselines: copy MSE {test['copy_mse']:.4f}, mean MSE {test['mean_mse']:.4f} (score vs mean "
                    f"{test['mean_score']:.3f}), smoothed copy MSE {test['smooth_mse']:.4f} (score vs it {test['smooth_score']:.3f})")
        if test.get("diagnosis"):
            _stderr(f"note: {test['diagnosis']}")
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


def frames_and_seconds(frames: int, fs: dict[str, float]) -> str:
    """'48 frames = 1.6 s at 30 Hz' (one rate) or '48 frames = 1.6 s at 30 Hz, 32 s at 1.5 Hz'."""
    return f"{frames} frames = " + ", ".join(f"{frames / r:.3g} s at {r:.4g} Hz" for r in sorted(set(fs.values()), reverse=True))


def describe_start(start: Event) -> None:
    """Context and horizon in seconds and what preprocessing did, before the first step."""
    fs = start.get("fs") or {}
    if fs and "context" in start:
        _stderr(f"context {frames_and_seconds(start['context'], fs)}; horizon {frames_and_seconds(start['horizon'], fs)}")
    for session, sentences in (start.get("preprocess_report") or {}).items():
        _stderr(f"preprocessing {session}: " + "; ".join(sentences))


def progress_line(step: Event, total: int) -> str:
    """'step 120/5000 (2.4%), 2.10 steps/s, elapsed 57 s, ETA 38 min' for logs without a terminal."""
    return (f"step {step['step']}/{total} ({100 * step['step'] / max(total, 1):.1f}%), {step['steps_per_s']:.2f} steps/s, "
            f"elapsed {_duration(step['elapsed_s'])}, ETA {_duration(step['eta_s'])}")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _bar(start: Event):
    if not sys.stderr.isatty():
        _stderr(f"{start['kind']}: {start['total_steps']} steps on {start['device']}, sessions {', '.join(start['sessions'])}")
        return None
    from tqdm import tqdm

    return tqdm(total=start["total_steps"], initial=start["start_step"], desc=start["kind"], unit="step", file=sys.stderr)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def model_value(text: str) -> tuple[str, Any]:
    """A --set KEY=VALUE argument: VALUE read as JSON where it parses, else kept as text."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.replace("-", "_"), json.loads(raw)
    except json.JSONDecodeError:
        return key.replace("-", "_"), raw
