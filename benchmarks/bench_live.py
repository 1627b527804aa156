"""Live-mode latency: from a frame being written (another process, SWMR HDF5) to its forecast being
available in Python, and to it being drawn in the Live panel.

Run under a display: ``xvfb-run -a python benchmarks/bench_live.py`` (``--no-gui`` measures the
forecast only). For each ROI count a spawned writer replays a recording at ``--fs`` (5 Hz) with
``poco_core.live.replay``, stamping each flushed append with ``time.monotonic()`` (system-wide on
Linux, so comparable across processes); the panel follows the file with a POCO model at the
paper's defaults (untrained: latency does not depend on the weights). Reported per frame:
written -> forecast made (``Forecast.made_at``) and written -> drawn (the panel's ``drawn``
signal, after a synchronous repaint of its plots). Goals: p99 < 100 ms at 1,000 ROIs; at 10,000
ROIs no frame dropped (every frame from C-1 on gets a forecast) or later than one frame period.
The traces are a cheap low-rank surrogate (a 10,000-neuron chaotic RNN would take minutes to
simulate and the content does not change the timing).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine_info, set_threads


def surrogate(n_rois: int, n_frames: int, fs: float, seed: int = 0):
    """Smooth low-rank activity plus noise, as a Recording."""
    from poco_core.data.recording import Recording

    rng = np.random.default_rng(seed)
    t = np.arange(n_frames)[:, None] / fs
    latents = np.sin(2 * np.pi * rng.uniform(0.02, 0.3, 8) * t + rng.uniform(0, 6.3, 8))
    x = latents @ rng.normal(size=(8, n_rois)) + 0.3 * rng.normal(size=(n_frames, n_rois))
    return Recording(traces=x.astype(np.float32), fs=fs, roi_ids=np.arange(n_rois).astype(str))


def writer(path: str, n_rois: int, n_frames: int, fs: float, start_at: float, stamps) -> None:
    """Spawned: replay into ``path`` from ``start_at`` (monotonic), sending (n_frames, time) per append."""
    from poco_core.live import replay

    rec = surrogate(n_rois, n_frames, fs)
    while time.monotonic() < start_at:
        time.sleep(0.01)
    replay(rec, path, fs=fs, on_write=lambda n, t: stamps.put((n, t)))
    stamps.put(None)


def stats(ms: np.ndarray) -> dict[str, float]:
    if not len(ms):
        return {"frames": 0}
    return {"median_ms": round(float(np.median(ms)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "max_ms": round(float(ms.max()), 1), "frames": int(len(ms))}


def run_size(n_rois: int, seconds: float, fs: float, gui: bool, app=None) -> dict:
    import torch

    from poco_core.live import H5LiveSource
    from poco_core.models import SessionSpec, build_model

    n_frames = int(seconds * fs)
    torch.manual_seed(0)
    model = build_model("poco", [SessionSpec("bench", "bench", [f"u{i}" for i in range(8)])])
    path = Path(tempfile.mkdtemp(prefix="poco-bench-live-")) / "live.h5"
    ctx = mp.get_context("spawn")
    stamps = ctx.Queue()
    proc = ctx.Process(target=writer, args=(str(path), n_rois, n_frames, fs, time.monotonic() + 8.0, stamps))
    proc.start()
    made: dict[int, float] = {}
    drawn: list[tuple[int, float]] = []
    received: list[int] = []
    compute: list[float] = []
    source = H5LiveSource(path)

    def on_update(update) -> None:
        received.append(len(update.raw))
        if update.forecasts:
            compute.append(update.compute_ms / len(update.forecasts))
        for f in update.forecasts:
            made[f.t] = f.made_at

    log = StampLog(stamps)
    if gui:
        follow_in_panel(source, model, log, on_update, made, drawn)
    else:
        import threading

        from poco_core.live import LiveSession

        session, stop = LiveSession(source, model), threading.Event()
        thread = threading.Thread(target=session.run, args=(on_update, stop))
        thread.start()
        while not log.drain() or (len(made) < n_frames - model.config.context + 1 and time.monotonic() < log.done_at + 10):
            time.sleep(0.05)
        stop.set()
        thread.join()
    proc.join(30)
    out = _summarise(n_rois, fs, log.written, made, drawn, model.config.context)
    out["frames_received"] = int(sum(received))
    out["cpu_ms_per_forecast"] = stats(np.array(compute))  # about what one idle core would take
    return out


def follow_in_panel(source, model, log: "StampLog", on_update, made: dict, drawn: list) -> None:
    """Follow ``source`` in a Live panel until the writer is done and the last frame and its forecast
    are drawn (or 10 s after); ``drawn`` gets (last frame, forecast frame, monotonic time) per repaint."""
    from qtpy.QtCore import QEventLoop, QTimer

    from poco_napari.live_widget import LiveWidget

    panel = LiveWidget()
    panel.resize(900, 700)
    panel.show()
    panel.updated.connect(on_update)

    def on_drawn(last: int, forecast_t: int) -> None:
        panel.plots.graphics.repaint()  # paint now, so the time stamp is "on screen"
        drawn.append((last, forecast_t, time.monotonic()))

    panel.drawn.connect(on_drawn)
    panel.connect_source(source, model)
    loop, timer = QEventLoop(), QTimer(interval=50)

    def check() -> None:
        done = log.drain()
        last = len(log.written) - 1  # the last frame drawn, and its forecast made and drawn
        caught_up = drawn and drawn[-1][0] >= last and drawn[-1][1] >= max(made, default=-1) >= last
        if done and (caught_up or time.monotonic() > log.done_at + 10):
            loop.quit()

    timer.timeout.connect(check)
    timer.start()
    loop.exec()
    timer.stop()
    panel.disconnect_source()
    panel.close()


class StampLog:
    """Frame index -> time it was flushed, drained from the writer's queue without blocking."""

    def __init__(self, stamps):
        self.stamps = stamps
        self.written: dict[int, float] = {}
        self.done_at: float | None = None

    def drain(self) -> bool:
        """Take what arrived; True once the writer has finished."""
        import queue

        while self.done_at is None:
            try:
                item = self.stamps.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self.done_at = time.monotonic()
            else:
                n, t = item
                self.written.update({i: t for i in range(len(self.written), n)})
        return self.done_at is not None


def _first_drawn(written: dict, shown_up_to: np.ndarray, at: np.ndarray, fs: float) -> dict:
    """Written -> the first redraw showing that frame."""
    ms = []
    for t in sorted(written):
        i = np.searchsorted(shown_up_to, t)
        if i < len(at):
            ms.append((at[i] - written[t]) * 1000)
    ms = np.array(ms)
    late = [t for t, m in zip(sorted(written), ms) if m > 1000 / fs][:20]
    return {**stats(ms), "later_than_one_period": int((ms > 1000 / fs).sum()), "late_frames": late,
            "never_drawn": len(written) - len(ms)}


def _summarise(n_rois: int, fs: float, written: dict, made: dict, drawn: list, context: int) -> dict:
    expected = [t for t in written if t >= context - 1]
    missing = [t for t in expected if t not in made]
    to_forecast = np.array([(made[t] - written[t]) * 1000 for t in expected if t in made])
    late = [t for t in expected if t in made and (made[t] - written[t]) * 1000 > 1000 / fs]
    out = {"rois": n_rois, "fs": fs, "frames_written": len(written), "forecasts_expected": len(expected),
           "forecasts_missing": len(missing), "forecast": stats(to_forecast),
           "forecast_later_than_one_period": len(late), "missing_frames": missing[:20], "late_frames": late[:20]}
    if drawn:
        draws = np.array(drawn)
        out["frame_drawn"] = _first_drawn(written, draws[:, 0], draws[:, 2], fs)
        shown: dict[int, float] = {}
        for t, when in zip(draws[:, 1], draws[:, 2]):
            shown.setdefault(int(t), when)  # the first redraw that showed the forecast made at t
        at = [shown.get(t) for t in expected]
        ms = np.array([(a - written[t]) * 1000 for t, a in zip(expected, at) if a is not None])
        out["forecast_drawn"] = {**stats(ms), "never_drawn": int(sum(a is None for a in at))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rois", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--seconds", type=float, default=60.0, help="replay length per ROI count (default 60 s)")
    parser.add_argument("--fs", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the follower (default 1)")
    parser.add_argument("--no-gui", action="store_true", help="measure written -> forecast only")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    set_threads(args.threads)
    app = None
    if not args.no_gui:
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance() or QApplication([])
    report = {"machine": machine_info(), "model": "poco, paper defaults (C=48, P=16, hidden 1024, d 128), untrained",
              "results": [run_size(n, args.seconds, args.fs, not args.no_gui, app) for n in args.rois]}
    report["machine"]["load_avg_1m_at_end"] = round(__import__("os").getloadavg()[0], 1)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
