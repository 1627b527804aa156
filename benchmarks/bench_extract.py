"""Live extraction from raw frames: a spawned writer appends 512 x 512 TIFF pages at 30 Hz, the
extractor follows (register + extract 1,000 ROIs + append to the growing .h5), then the whole
chain with the Live panel forecasting from the TIFF folder directly (extraction in the panel's
worker thread) and, with ``--chain both`` (default), again with the extraction in a process of its
own writing the growing .h5 that the panel follows (``poco extract --follow`` beside the dock).

Run under a display: ``xvfb-run -a python benchmarks/bench_extract.py`` (``--no-gui`` skips the
chain). The writer renders its movie (``poco_core.data.movie``) before the clock starts and stamps
each flushed page with ``time.monotonic()`` (system-wide on Linux, so comparable across
processes). Reported: per-frame register+extract time (median, p99), frame written -> its traces
written to the .h5 (median, p99, max), frames never extracted and frames later than one frame
period; for the chain, frame written -> forecast drawn as in ``bench_live.py`` (POCO at the
paper's defaults, untrained: latency does not depend on the weights). Goals (issue 19): extraction
p99 < 10 ms/frame, nothing dropped or later than one period, written -> forecast drawn p99 < 100 ms
at 1,000 ROIs.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine_info, set_threads
from bench_live import StampLog, _summarise, follow_in_panel, stats


def make_segmentation(folder: Path, n_rois: int, n_frames: int, fs: float, size: int) -> Path:
    from poco_core.data.io import save_recording
    from poco_core.data.movie import movie_segmentation
    from poco_core.data.simulate import simulate_recording

    rec = simulate_recording(n_rois, n_frames, seed=0, calcium=True, fs=fs, image_shape=(size, size))
    return save_recording(movie_segmentation(rec), folder / "rois.h5")


def writer(rois: str, frames_dir: str, fs: float, per_file: int, start_at: float, stamps) -> None:
    """Spawned: render the movie, then write it page by page from ``start_at``, sending (frames written, time)."""
    from poco_core.data.io import load_recording
    from poco_core.data.movie import render_frames, write_tiff_frames

    movie = list(render_frames(load_recording(rois, lazy=False)))
    while time.monotonic() < start_at:
        time.sleep(0.01)
    write_tiff_frames(iter(movie), frames_dir, fs, per_file, on_write=lambda i, t: stamps.put((i + 1, t)))
    stamps.put(None)


def start_writer(rois: Path, frames_dir: Path, fs: float, per_file: int, lead_s: float):
    ctx = mp.get_context("spawn")
    stamps = ctx.Queue()
    proc = ctx.Process(target=writer, args=(str(rois), str(frames_dir), fs, per_file, time.monotonic() + lead_s, stamps))
    proc.start()
    return proc, StampLog(stamps)


def run_extraction(rois: Path, work: Path, fs: float, per_file: int, lead_s: float) -> dict:
    """The extractor alone, following the writer's folder in this process."""
    from poco_core.live.extract import ExtractionSource

    frames_dir = work / "frames"
    proc, log = start_writer(rois, frames_dir, fs, per_file, lead_s)
    frames_dir.mkdir(exist_ok=True)
    t0 = time.monotonic()
    src = ExtractionSource(frames_dir, rois, out=work / "traces.h5", fs=fs, follow=True)  # as `poco extract --fs`
    src.poll()  # builds the masks and creates the output (before the writer starts)
    setup_s = time.monotonic() - t0
    extracted: dict[int, float] = {}
    cpu0 = time.process_time()
    while not (log.drain() and len(extracted) >= len(log.written)) and time.monotonic() < (log.done_at or 1e18) + 10:
        k = len(src.poll())
        if k:
            now = time.monotonic()
            extracted.update({i: now for i in range(src.n_frames - k, src.n_frames)})
        else:
            time.sleep(0.002)
    loop_cpu_s = time.process_time() - cpu0
    src.close()
    proc.join(30)
    latency = np.array([(extracted[t] - log.written[t]) * 1000 for t in sorted(log.written) if t in extracted])
    period_ms = 1000 / fs
    return {
        "frames_written": len(log.written), "frames_extracted": len(extracted),
        "dropped": len(log.written) - len(extracted), "later_than_one_period": int((latency > period_ms).sum()),
        "late_frames": [int(t) for t, ms in zip(sorted(log.written), latency) if ms > period_ms],
        "register_extract_ms": stats(np.array(src.frame_ms)), "register_extract_cpu_ms": stats(np.array(src.frame_cpu_ms)),
        "written_to_traces_ms": stats(latency),
        "follower_cpu_ms_per_frame": round(loop_cpu_s * 1000 / max(len(extracted), 1), 2),  # poll + read + extract + write
        "setup_s": round(setup_s, 2),
        "shift_range_px": [round(float(v), 2) for v in np.concatenate(src.shifts).min(0).tolist() + np.concatenate(src.shifts).max(0).tolist()],
    }


def extractor(rois: str, frames_dir: str, out: str, fs: float, stop) -> None:
    """Spawned: ``poco extract --follow`` in its own process (its own interpreter and GIL)."""
    from poco_core.base.allocator import keep_freed_memory
    from poco_core.live.extract import ExtractionSource

    keep_freed_memory()
    source = ExtractionSource(frames_dir, rois, out=out, fs=fs, follow=True)
    while not stop.is_set():
        if not len(source.poll()):
            time.sleep(0.002)
    source.close()


def run_chain(rois: Path, work: Path, fs: float, per_file: int, lead_s: float, own_process: bool) -> dict:
    """Writer -> extraction -> Live panel -> forecast drawn. The extraction runs in the panel's
    worker thread (the dock given a TIFF folder and ROIs) or, with ``own_process``, in a process of
    its own writing the growing .h5 that the panel follows (``poco extract --follow`` beside the dock)."""
    import torch

    from poco_core.live.extract import ExtractionSource
    from poco_core.live.sources import H5LiveSource
    from poco_core.models import SessionSpec, build_model

    torch.manual_seed(0)
    model = build_model("poco", [SessionSpec("bench", "bench", [f"u{i}" for i in range(8)])])
    frames_dir = work / ("frames_chain_process" if own_process else "frames_chain")
    frames_dir.mkdir()
    traces = frames_dir.with_suffix(".h5")
    proc, log = start_writer(rois, frames_dir, fs, per_file, lead_s)
    if own_process:
        ctx = mp.get_context("spawn")
        stop = ctx.Event()
        child = ctx.Process(target=extractor, args=(str(rois), str(frames_dir), str(traces), fs, stop))
        child.start()
        source = H5LiveSource(traces, fs=fs)
    else:
        source = ExtractionSource(frames_dir, rois, out=traces, follow=True)
    made: dict[int, float] = {}
    drawn: list = []
    compute: list[float] = []

    def on_update(update) -> None:
        if update.forecasts:
            compute.append(update.compute_ms / len(update.forecasts))
        for f in update.forecasts:
            made[f.t] = f.made_at

    follow_in_panel(source, model, log, on_update, made, drawn)
    proc.join(30)
    out = _summarise(len(source.roi_ids), fs, log.written, made, drawn, model.config.context)
    out["extraction"] = "own process" if own_process else "the panel's worker thread"
    if own_process:
        stop.set()
        child.join(30)
    else:
        out["register_extract_ms"] = stats(np.array(source.frame_ms))
        out["register_extract_cpu_ms"] = stats(np.array(source.frame_cpu_ms))
    out["cpu_ms_per_forecast"] = stats(np.array(compute))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rois", type=int, default=1000)
    parser.add_argument("--size", type=int, default=512, help="frame side in pixels (default 512)")
    parser.add_argument("--seconds", type=float, default=20.0, help="movie length (default 20 s)")
    parser.add_argument("--fs", type=float, default=30.0)
    parser.add_argument("--frames-per-file", type=int, default=100)
    parser.add_argument("--lead", type=float, help="seconds the writer gets to render its movie before writing "
                                                    "(default 15 + 0.02 per frame)")
    parser.add_argument("--no-gui", action="store_true", help="measure the extractor only")
    parser.add_argument("--chain", choices=("thread", "process", "both"), default="both",
                        help="where the chain's extraction runs: the panel's worker thread, its own process, or both runs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    set_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="poco-bench-extract-"))
    n_frames = int(args.seconds * args.fs)
    rois = make_segmentation(work, args.rois, n_frames, args.fs, args.size)
    lead = args.lead if args.lead is not None else 15.0 + n_frames * 0.02  # the writer renders its movie first
    report = {"machine": machine_info(), "setting": {"rois": args.rois, "frame": [args.size, args.size], "fs": args.fs,
                                                     "frames": n_frames, "frames_per_file": args.frames_per_file},
              "extract": run_extraction(rois, work, args.fs, args.frames_per_file, lead)}
    if not args.no_gui:
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance() or QApplication([])  # noqa: F841 (kept alive for the panel)
        for mode in ("thread", "process") if args.chain == "both" else (args.chain,):
            key = "chain" if mode == "thread" else "chain_extract_process"
            report[key] = run_chain(rois, work, args.fs, args.frames_per_file, lead, mode == "process")
    report["machine"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
