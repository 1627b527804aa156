"""How late does a 20 ms QTimer fire on napari's GUI thread while a training job runs?

Run under a display (``xvfb-run -a python benchmarks/bench_gui_responsiveness.py``). Opens the
synthetic cohort in napari, starts training from the Training dock (live plots following) and
records timer lateness for ``--seconds``; then the same job in a Python thread of the GUI
process (what the process design avoids), and idle napari as the floor. Goal: p99 < 50 ms
with the job in a child process using every core.
"""
from __future__ import annotations

import argparse
import json
import queue
import threading
import time

import numpy as np

TIMER_MS = 20
MODEL = "d_model=64, hidden=256"


def lateness(app, seconds: float) -> dict[str, float]:
    """Median / p99 / max lateness (ms) of a precise 20 ms timer over `seconds`."""
    from qtpy.QtCore import QEventLoop, Qt, QTimer

    ticks: list[float] = []
    timer = QTimer(timerType=Qt.PreciseTimer, interval=TIMER_MS)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    timer.start()
    loop.exec()
    timer.stop()
    late = np.maximum(np.diff(ticks) * 1000 - TIMER_MS, 0)
    return {"median_ms": float(np.median(late)), "p99_ms": float(np.percentile(late, 99)),
            "max_ms": float(late.max()), "ticks": len(ticks)}


def wait_for(app, condition, timeout: float = 120) -> None:
    from qtpy.QtCore import QEventLoop, QTimer

    deadline = time.monotonic() + timeout
    loop = QEventLoop()
    poll = QTimer(interval=50)
    poll.timeout.connect(lambda: (condition() or time.monotonic() > deadline) and loop.quit())
    poll.start()
    loop.exec()
    poll.stop()
    if not condition():
        raise TimeoutError("the job did not get going in time")


def make_widget(viewer, tmp: str, threads: int):
    from poco_core.data.preprocess import PreprocessConfig, prepare
    from poco_core.data.simulate import simulate_cohort
    from poco_napari.reader import layers_for
    from poco_napari.store import preprocessed
    from poco_napari.training_widget import TrainingWidget

    recs = simulate_cohort(3, n_rois=120, n_frames=2000, seed=0)
    for data, kwargs, kind in layers_for(recs):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    for rec in recs:
        preprocessed.set(rec, prepare([rec], PreprocessConfig(block_len=500)).sessions[0])
    widget = TrainingWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Training")
    widget.overrides.setText(MODEL)
    widget.steps.setValue(1_000_000)
    widget.val_every.setValue(25)
    widget.batch_size.setValue(32)
    widget.threads.setValue(threads)
    widget.device.setCurrentText("cpu")
    widget.checkpoint.setText(f"{tmp}/bench.pt")
    return widget


def in_process(app, widget, seconds: float, low_priority: bool) -> dict[str, float]:
    """The design: the widget's job in a spawned child process."""
    widget.low_priority.setChecked(low_priority)
    widget.button.click()
    job = widget.job
    wait_for(app, lambda: job.step > 0)
    first = job.step
    result = lateness(app, seconds)
    result["steps_per_s"] = (job.step - first) / seconds
    widget.button.click()  # cancel
    wait_for(app, lambda: job.status.final)
    return result


def in_thread(app, widget, seconds: float) -> dict[str, float]:
    """The alternative: the same job spec run by a Python thread of the GUI process."""
    import torch
    from qtpy.QtCore import QTimer

    from poco_core.training.jobs import job_events, job_threads
    from poco_napari.job_docks import docks_for
    from poco_napari.jobs import make_job

    same = {k: v for k, v in widget.job.spec.to_dict().items() if k not in ("kind", "recordings", "checkpoint")}
    job = make_job("train", widget.checked_recordings(),
                   checkpoint=widget.job.spec.checkpoint.replace(".pt", "-thread.pt"), **same)
    spec = job.spec
    torch.set_num_threads(job_threads(spec.threads))
    events: queue.Queue = queue.Queue()
    stop = threading.Event()

    def run() -> None:
        try:
            for event in job_events(spec, stop):
                events.put(event)
        except Exception as exc:
            events.put({"type": "error", "message": repr(exc)})

    worker = threading.Thread(target=run, daemon=True)
    docks = docks_for(widget.viewer)
    steps: list[float] = []

    def drain() -> None:
        batch = []
        while not events.empty():
            batch.append(events.get())
        if batch:
            docks.add_events(batch)
            steps.extend(e["steps_per_s"] for e in batch if e["type"] == "step")
            errors = [e["message"] for e in batch if e["type"] == "error"]
            if errors:
                raise RuntimeError(errors[0])

    pump = QTimer(interval=50)
    pump.timeout.connect(drain)
    pump.start()
    worker.start()
    wait_for(app, lambda: bool(steps))
    first = len(steps)
    result = lateness(app, seconds)
    result["steps_per_s"] = (len(steps) - first) / seconds
    stop.set()
    worker.join(30)
    pump.stop()
    job.cancel()  # never started: this just removes its temporary recordings
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads for the job (0: all cores but one)")
    parser.add_argument("--no-thread-mode", action="store_true", help="skip the in-thread comparison")
    args = parser.parse_args()

    import tempfile

    import napari

    viewer = napari.Viewer()
    app = napari.qt.get_qapp()
    with tempfile.TemporaryDirectory() as tmp:
        widget = make_widget(viewer, tmp, args.threads)
        results = {"idle": lateness(app, min(args.seconds, 5.0)),
                   "process": in_process(app, widget, args.seconds, low_priority=False),
                   "process, nice": in_process(app, widget, args.seconds, low_priority=True)}
        if not args.no_thread_mode:
            results["thread"] = in_thread(app, widget, args.seconds)
    print(json.dumps(results, indent=1))
    print(f"{'mode':<15} {'median':>8} {'p99':>8} {'max':>8}  steps/s   (lateness of a {TIMER_MS} ms timer, ms)")
    for mode, r in results.items():
        print(f"{mode:<15} {r['median_ms']:8.1f} {r['p99_ms']:8.1f} {r['max_ms']:8.1f}  {r.get('steps_per_s', 0):7.1f}")
    viewer.close()


if __name__ == "__main__":
    main()
