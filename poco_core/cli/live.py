"""`poco live`: follow a growing recording with rolling forecasts; `poco simulate --live`: make one.

``poco simulate --live OUT.h5 --fs 5`` replays a synthetic recording (or ``--replay REC``, a real
one) into OUT.h5 at the given rate; ``poco live OUT.h5 --checkpoint model.pt`` follows it in
another terminal, printing the running score against the copy baseline once a second.
"""
from __future__ import annotations

import argparse
import sys
import signal
import threading
import time
from pathlib import Path

from poco_core.base.events import CancelToken
from poco_core.cli.common import add_precision_arg
from poco_core.cli.safety import (
    check_inputs,
    claim,
    non_negative_int,
    positive_float,
    positive_int,
)


def add_live_options(p: argparse.ArgumentParser) -> None:
    """The options `poco simulate` gains for live replay."""
    g = p.add_argument_group("live replay")
    g.add_argument("--live", metavar="OUT.h5", help="replay into a growing OUT.h5 at --fs frames/s (SWMR; follow it with `poco live`)")
    g.add_argument("--replay", metavar="REC", help="with --live: replay this recording instead of a simulated one")


def _stop_on_ctrl_c() -> CancelToken:
    """Ctrl-C or SIGTERM (kill, timeout, schedulers) stops cleanly: files closed, exit 0."""
    token = CancelToken()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: token.cancel())
    return token


def replay_command(args: argparse.Namespace) -> int:
    """`poco simulate --live`: write frames into args.live at args.fs until done or Ctrl-C."""
    from poco_core.live import replay

    claim(args.live, "recording", [args.replay], args.force, option="--live", hold=False)  # the writer locks it
    if args.replay:
        from poco_core.data.io import load_recording

        rec = load_recording(args.replay)
    else:
        from poco_core.data.simulate import simulate_recording

        rec = simulate_recording(args.rois[0], args.frames, args.regions, args.seed, args.calcium, args.fs)
    print(f"replaying {rec.n_frames} frames x {rec.n_rois} ROIs into {args.live} at {args.fs:g} Hz (Ctrl-C stops)")
    n = replay(rec, args.live, fs=args.fs, cancel=_stop_on_ctrl_c())
    print(f"{args.live}: {n} frames written")
    return 0


def run(args: argparse.Namespace) -> int:
    from poco_core.live import LiveSession, OnlineAdapter, OnlineConfig, open_source

    check_inputs([args.source] + ([args.checkpoint] if args.checkpoint else []))
    model = None
    if args.checkpoint:
        from poco_core.training.restore import load_model

        model = load_model(args.checkpoint)
    config = OnlineConfig(zscore=args.zscore, filter=args.filter, pca_k=args.pca_k, calibration=args.calibration)
    session = LiveSession(open_source(args.source, fs=args.fs), model, config, session=args.session,
                          precision=args.precision)
    stop, adapter, shown, warned = _stop_on_ctrl_c(), None, 0.0, False
    if args.seconds:
        timer = threading.Timer(args.seconds, stop.cancel)
        timer.daemon = True
        timer.start()

    def line() -> str:
        fc = session.forecaster
        s = None if fc is None else fc.score()
        score = "" if s is None else f" · score vs copy {s.score:+.3f} ({s.n_forecasts} forecasts)"
        adapted = None if fc is None or not fc.model_version else fc.score(since_version=fc.model_version)
        if adapted is not None:
            score += f" · adapted model v{fc.model_version}: {adapted.score:+.3f} ({adapted.n_forecasts})"
        skipped = f" · {fc.skipped} frames without a forecast (CPU busy)" if fc is not None and fc.skipped else ""
        return f"frame {session.n_frames - 1}{score}{skipped} · {session.status()}"

    def report(update) -> None:
        nonlocal adapter, shown, warned
        if not warned and session.preprocessor is not None:
            warned = True
            for note in session.notes:
                print(f"warning: {note}", file=sys.stderr)
        if args.adapt and adapter is None and session.forecaster is not None:
            adapter = OnlineAdapter(session, steps=args.adapt_steps,
                                    on_event=lambda e: e["type"] == "swapped" and print(f"adapted embeddings swapped in (round {e['round']})")).start()
        if time.monotonic() - shown >= 1.0:
            shown = time.monotonic()
            print(line(), flush=True)

    session.run(report, stop)
    print(line())
    print(f"preprocessing: {session.describe()}")
    if adapter is not None:
        adapter.stop(timeout=10)
    session.source.close()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "live", help="follow a growing recording (.h5 or chunk folder) with rolling forecasts",
        description="Polls SOURCE (a project .h5 file another process appends to, or a folder of .npy chunks), "
                    "preprocesses honestly (only past frames) and forecasts at every frame.")
    p.add_argument("source", type=Path, help="growing .h5 file or folder of .npy chunks")
    p.add_argument("--checkpoint", help="pretrained model (.pt); without it frames are only followed")
    p.add_argument("--fs", type=positive_float, help="sampling rate of a chunk folder (an .h5 file stores its own)")
    p.add_argument("--session", default="live", help="session name in the model (a known one reuses its embeddings)")
    p.add_argument("--zscore", choices=["running", "frozen", "none"], default="running")
    p.add_argument("--filter", choices=["none", "causal_lowpass"], default="none")
    p.add_argument("--pca-k", type=positive_int, default=None, help="PCA components fitted on the calibration frames")
    p.add_argument("--calibration", type=non_negative_int, default=0, help="calibration frames for --zscore frozen and --pca-k")
    add_precision_arg(p, "auto")
    p.add_argument("--adapt", action="store_true", help="finetune the session's embeddings in the background")
    p.add_argument("--adapt-steps", type=positive_int, default=200)
    p.add_argument("--seconds", type=float, default=0, help="stop after this long (default: until Ctrl-C)")
    p.set_defaults(func=run)
