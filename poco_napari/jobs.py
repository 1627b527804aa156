"""Background training and finetuning jobs: one spawned child process per job, a queue of them.

What this module may do:
- start :func:`poco_core.training.jobs.run_job` in a child process with the ``spawn`` method (a fresh
  interpreter: no Qt, no napari, no inherited CUDA state); the child imports only ``poco_core``;
- read the child's event batches on the GUI thread from a one-way pipe with a ``QTimer``
  that polls without blocking and stops reading after ``READ_BUDGET_S`` per tick;
- cancel by setting the job's ``multiprocessing.Event`` (the trainer checks it every step and
  saves its best checkpoint, or its current weights when none was validated, before anything
  else), then -- only if it is still alive after the long ``CANCEL_GRACE_S`` -- terminate the
  child (SIGTERM, which it also treats as a cancel) and kill it ``KILL_AFTER_TERMINATE_S`` later;
  the final message says which checkpoint was kept;
- write each recording to a temporary project HDF5 file (``poco_core.data.io.save_recording``) in a
  per-job folder that is removed when the job ends. Writing once is exact (the child sees what
  the user sees, including in-memory sample data, ROI selections and overridden sampling
  rates) and cheap next to training; the child memory-maps/reads it with ``load_recording``.

What it may not do: run engine code on the GUI thread, block it (no ``join`` without a
timeout, no ``recv`` without ``poll``), or touch napari layers and widgets -- widgets listen
to the :class:`Job` signals.

Why a process and not a thread: a torch job in a thread holds the GIL between kernels and
competes with Qt's event loop; a child process keeps the GUI's 20 ms timer on time (see
``benchmarks/bench_gui_responsiveness.py``), can be stopped for sure, and dying with an
out-of-memory kill or a CUDA error leaves napari running. Why a polling QTimer and not a
QSocketNotifier: it behaves the same with Windows pipes and batches reads naturally.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
import types
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, Sequence

from qtpy.QtCore import QCoreApplication, QObject, QTimer, Signal

from poco_core.data.recording import Recording
from poco_core.training.jobs import JobSpec, RecordingRef
from poco_napari.job_child import run_logged, stderr_tail

POLL_INTERVAL_MS = 50
READ_BUDGET_S = 0.01
CANCEL_GRACE_S = 60.0  # a big recording's step or save may take long; force is the last resort
KILL_AFTER_TERMINATE_S = 5.0
EXIT_GRACE_S = 2.0  # a child that closed its pipe but does not exit


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.CANCELLED, JobStatus.FAILED)


def describe_exit(exitcode: int | None) -> str:
    """Plain words for how a child process ended without reporting a result."""
    if exitcode is None:
        return "the job's process is still running"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hints = {
            "SIGKILL": " (the system may have run out of memory, or it was killed from outside)",
            "SIGSEGV": " (it crashed: segmentation fault)",
            "SIGTERM": " (it was asked to stop)",
            "SIGABRT": " (it aborted, e.g. after a CUDA or library error)",
        }
        return f"the job's process was killed by {name}{hints.get(name, '')}"
    if exitcode == 0:
        return "the job's process ended without reporting a result"
    return f"the job's process exited with code {exitcode} without reporting a result"


@contextmanager
def _empty_main():
    """Start children with an empty ``__main__``. Spawn re-runs the parent's main script or
    module in the child (``multiprocessing.spawn.get_preparation_data``), so a user's napari
    script without an ``if __name__ == "__main__":`` guard would run again there; the child
    needs nothing from it (its target lives in ``poco_napari.job_child``)."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


class Job(QObject):
    """One training or finetuning run in a child process; its state follows the streamed events.

    Signals: ``events(list)`` once per batch read (event dicts in order), ``changed()`` after
    any state change, ``finished()`` once when the child has exited for whatever reason.
    """

    events = Signal(list)
    changed = Signal()
    finished = Signal()

    def __init__(self, spec: JobSpec, temp_dir: str | None = None, parent: QObject | None = None,
                 events_fn: Any = None):
        super().__init__(parent)
        self.spec = spec
        self.events_fn = events_fn  # the child's event stream (None: training/finetuning)
        self.status = JobStatus.QUEUED
        self.message = ""
        self.step = 0
        self.total_steps = spec.steps
        self.loss: float | None = None
        self.best_score: float | None = None
        self.best_step: int | None = None
        self.checkpoint: str | None = None
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self.history: list[dict[str, Any]] = []
        self.warnings: list[str] = []  # from the start event
        self.preprocess_report: dict[str, list[str]] = {}  # session -> what preprocessing did
        self.elapsed_s: float | None = None  # from step events, when the engine reports them
        self.eta_s: float | None = None
        self.started_at: float | None = None  # time.monotonic() at start
        self._temp_dir = temp_dir
        self._process: Any = None
        self._conn: Any = None
        self._cancel: Any = None
        self._eof_at: float | None = None
        self._terminated = False
        self._stderr_path: str | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.timeout.connect(self._poll)

    @property
    def name(self) -> str:
        return self.spec.name or f"{self.spec.kind} {self.spec.model}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Spawn the child; returns at once."""
        if self.status is not JobStatus.QUEUED:
            raise RuntimeError(f"job {self.name!r} is {self.status.value}, not queued")
        ctx = mp.get_context("spawn")
        self._conn, child_conn = ctx.Pipe(duplex=False)
        self._cancel = ctx.Event()
        fd, self._stderr_path = tempfile.mkstemp(prefix="poco-job-", suffix=".stderr", dir=self._temp_dir)
        os.close(fd)
        self._process = ctx.Process(
            target=run_logged, args=(self.spec, child_conn, self._cancel, self._stderr_path, self.events_fn),
            name=f"poco-{self.name}", daemon=True,
        )
        with _empty_main():
            self._process.start()
        self.started_at = time.monotonic()
        child_conn.close()  # the child holds the only write end: its exit means EOF here
        self._set_status(JobStatus.RUNNING, f"started (pid {self._process.pid})")
        self._timer.start()

    def cancel(self) -> None:
        """Ask the job to stop at its next step; force it after CANCEL_GRACE_S if it does not."""
        if self.status is JobStatus.QUEUED:
            self._finish(JobStatus.CANCELLED, "cancelled before it started")
        elif self.status is JobStatus.RUNNING:
            self._cancel.set()
            self._set_status(JobStatus.CANCELLING, "stopping at the next step and saving the best checkpoint...")
            QTimer.singleShot(int(CANCEL_GRACE_S * 1000), self._force_stop)

    def _force_stop(self) -> None:
        proc = self._process
        if proc is None or not proc.is_alive():
            return
        self._terminated = True
        proc.terminate()
        QTimer.singleShot(int(KILL_AFTER_TERMINATE_S * 1000), lambda: proc.is_alive() and proc.kill())

    def _poll(self) -> None:
        batch: list[dict[str, Any]] = []
        deadline = time.monotonic() + READ_BUDGET_S
        if self._eof_at is None:
            try:
                while time.monotonic() < deadline and self._conn.poll():
                    batch.extend(self._conn.recv())
            except (EOFError, OSError):
                self._eof_at = time.monotonic()
        if batch:
            self._absorb(batch)
            self.events.emit(batch)
            self.changed.emit()
        if self._eof_at is not None and not self.status.final:
            if self._process.exitcode is not None:
                self._on_exit(self._process.exitcode)
            elif time.monotonic() - self._eof_at > EXIT_GRACE_S:
                self._force_stop()  # closed its pipe but hangs on the way out

    def _absorb(self, batch: list[dict[str, Any]]) -> None:
        self.history.extend(batch)
        for ev in batch:
            kind = ev.get("type")
            if kind == "start":
                self.total_steps = ev.get("total_steps", self.total_steps)
                self.warnings = [str(w) for w in ev.get("warnings") or []]
                self.preprocess_report = dict(ev.get("preprocess_report") or {})
            elif kind == "crossval_settled":  # cross-validation settled on the default split: fewer steps to run
                self.total_steps = int(ev["total_steps"])
            elif kind == "step":
                self.step = int(ev["step"])
                self.loss = float(ev["loss"])
                self.elapsed_s, self.eta_s = ev.get("elapsed_s"), ev.get("eta_s")
            elif kind == "validation":
                score = ev.get("val_score")
                if score is not None and ev.get("best"):  # the checkpoint kept (pooled MSE, the warm-up's rule)
                    self.best_score, self.best_step = float(score), int(ev["step"])
            elif kind == "stage" and ev.get("reset_best", int(ev.get("step", 1)) > 1):  # CalM's transformer:
                self.best_score = None  # best-checkpoint tracking restarts with it (not after POCO's MLP warm-up)
            elif kind == "checkpoint":
                self.checkpoint = str(ev["path"])
            elif kind == "done":
                self.result = ev
                self.checkpoint = ev.get("checkpoint") or self.checkpoint
                if ev.get("best_val_score") is not None:  # cross-validation: the run kept, not the last one
                    self.best_score, self.best_step = float(ev["best_val_score"]), int(ev["best_step"])
            elif kind == "error":
                self.error = str(ev.get("message", "unknown error"))

    def _on_exit(self, exitcode: int) -> None:
        kept = self._kept_checkpoint()
        if self.error is not None:
            self._finish(JobStatus.FAILED, f"failed: {self.error}{kept}")
        elif self.result is not None:
            cancelled = bool(self.result.get("cancelled"))
            status = JobStatus.CANCELLED if cancelled else JobStatus.DONE
            best = "" if self.best_score is None else f"; best validation score {self.best_score:.3f} at step {self.best_step}"
            note = f" ({self.result['note']})" if cancelled and self.result.get("note") and self.best_score is None else ""
            how = self.result["stop_reason"] if self.result.get("stopped_early") else ("cancelled" if cancelled else "finished")
            which = f"; {self.result['kept_note']}" if self.result.get("kept_note") else ""
            self._finish(status, f"{how}{note}{best}{which}{kept}")
        elif self._cancel.is_set():
            how = f"stopped by force (it did not stop within {CANCEL_GRACE_S:g} s)" if self._terminated else "cancelled"
            self._finish(JobStatus.CANCELLED, f"{how}{kept}")
        else:
            tail = stderr_tail(self._stderr_path) if self._stderr_path else ""
            self._finish(JobStatus.FAILED, f"{describe_exit(exitcode)}{kept}" + (f"\nits last output:\n{tail}" if tail else ""))

    def _kept_checkpoint(self) -> str:
        if self.checkpoint and Path(self.checkpoint).is_file():
            return f"; checkpoint: {self.checkpoint}"
        return "; no checkpoint was written"

    def _echo_stderr(self) -> None:
        """Copy what the child wrote to its stderr to ours (a terminal still sees tracebacks),
        then remove the file unless it sits in the job folder removed next."""
        path, self._stderr_path = self._stderr_path, None
        if not path:
            return
        try:
            text = Path(path).read_text(errors="replace")
            if text:
                sys.stderr.write(text)
            if not self._temp_dir:
                Path(path).unlink()
        except OSError:
            pass

    def _set_status(self, status: JobStatus, message: str) -> None:
        self.status, self.message = status, message
        self.changed.emit()

    def _finish(self, status: JobStatus, message: str) -> None:
        self._timer.stop()
        self._echo_stderr()
        if self._conn is not None:
            self._conn.close()
        if self._temp_dir:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
        self._set_status(status, message)
        self.finished.emit()


def make_job(kind: str, recordings: Sequence[Recording], events_fn: Any = None, **fields: Any) -> Job:
    """A queued Job whose child reads `recordings` from temporary project HDF5 files; `events_fn`
    (a module-level function of (spec, cancel)) makes its event stream, by default the trainer's."""
    from poco_core.data.io import save_recording

    temp_dir = tempfile.mkdtemp(prefix="poco-job-")
    refs = []
    for i, rec in enumerate(recordings):
        path = Path(temp_dir) / f"{i:02d}.h5"
        save_recording(rec, path)
        refs.append(RecordingRef(str(path)))
    try:
        spec = JobSpec(kind=kind, recordings=refs, **fields)
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return Job(spec, temp_dir=temp_dir, events_fn=events_fn)


class JobQueue(QObject):
    """Runs jobs one after another (the CPU is shared); every widget shows the same queue."""

    added = Signal(object)
    changed = Signal()
    finished = Signal(object)

    def __init__(self, max_running: int = 1, parent: QObject | None = None):
        super().__init__(parent)
        self.max_running = max_running
        self.jobs: list[Job] = []

    def submit(self, job: Job) -> Job:
        job.setParent(self)
        job.changed.connect(self.changed)
        job.finished.connect(lambda: self.finished.emit(job))
        job.finished.connect(self._start_next)
        self.jobs.append(job)
        self.added.emit(job)
        self._start_next()
        return job

    def active(self) -> list[Job]:
        return [j for j in self.jobs if not j.status.final]

    def cancel_all(self) -> None:
        for job in self.active():
            job.cancel()

    def _start_next(self) -> None:
        running = [j for j in self.jobs if j.status in (JobStatus.RUNNING, JobStatus.CANCELLING)]
        for job in self.jobs:
            if len(running) >= self.max_running:
                break
            if job.status is JobStatus.QUEUED:
                job.start()
                running.append(job)


_QUEUE: JobQueue | None = None


def job_queue() -> JobQueue:
    """The application-wide queue, created on first use and owned by the QApplication."""
    global _QUEUE
    if _QUEUE is None:
        _QUEUE = JobQueue(parent=QCoreApplication.instance())
    return _QUEUE
