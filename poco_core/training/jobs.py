"""A picklable, Qt-free description of a background job, and the child process's entry point.

The GUI (``poco_napari.jobs``) starts :func:`run_job` in a *spawned* interpreter. This module
imports nothing from Qt or napari, so the child starts without a display, and a crash, an
out-of-memory kill or a CUDA error there cannot take napari down.

Data hand-off: the child gets file paths plus the preprocessing config, never arrays, and
loads the recordings itself with :func:`poco_core.data.io.load_recording` (memory-mapped where the
format allows). The GUI saves in-memory recordings to a temporary project HDF5 file first.

Events go back over a one-way ``multiprocessing`` pipe as *lists* of event dicts: ``step``
events are batched for up to ``BATCH_INTERVAL_S`` so a fast trainer costs the GUI a handful of
reads per second, while every other event (validation, checkpoint, done, error) flushes at once.
"""
from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Literal

from poco_core.base.errors import PocoError
from poco_core.base.events import CancelLike, CancelToken, Event
from poco_core.training.defaults import CV_FOLDS, FINETUNE_DEFAULTS, FINETUNE_MODES, MLP_WARMUP, TRAIN_DEFAULTS

BATCH_INTERVAL_S = 0.05
JobKind = Literal["train", "finetune", "circuit"]


@dataclass(frozen=True)
class RecordingRef:
    """Where the child finds one recording: a path and the `load_recording` options that read it."""

    path: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobSpec:
    """Everything a training, finetuning or circuit-fit run needs, as plain picklable values (a circuit
    fit reads ``model_config`` as CircuitConfig fields, ``preprocess`` as DataPrep fields and writes
    its HDF5 result to ``checkpoint``)."""

    kind: JobKind
    recordings: list[RecordingRef]
    checkpoint: str
    model: str = "poco"
    model_config: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    context: int = 48
    horizon: int = 16
    steps: int | None = None  # None: the kind's default (TRAIN_DEFAULTS / FINETUNE_DEFAULTS), as are the next three
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    device: str = "auto"
    val_every: int | None = None
    init_checkpoint: str | None = None
    mode: str = "embeddings"
    mlp_warmup: bool = MLP_WARMUP  # training: POCO's MLP alone first (training/defaults.py)
    cv_folds: int = CV_FOLDS  # training: > 1 chooses POCO or its MLP by cross-validation (training/crossval.py)
    embedding_lr_scale: float | None = None  # None: the kind's default (finetuning keeps one rate)
    threads: int = 0
    nice: int = 5
    name: str = ""
    sample_rois: dict[str, list[str]] = field(default_factory=dict)  # session -> unit ids in forecast samples

    def __post_init__(self) -> None:
        if self.kind not in ("train", "finetune", "circuit"):
            raise ValueError(f"unknown job kind {self.kind!r}")
        if self.kind == "finetune" and not self.init_checkpoint:
            raise ValueError("a finetuning job needs init_checkpoint")
        if self.mode not in FINETUNE_MODES:
            raise ValueError(f"finetune mode must be one of {FINETUNE_MODES}, got {self.mode!r}")
        if self.cv_folds == 1 or self.cv_folds < 0 or (self.cv_folds and self.kind != "train"):
            raise ValueError(f"cv_folds must be 0 (off) or at least 2, for training only; got {self.cv_folds}")
        defaults = TRAIN_DEFAULTS if self.kind == "train" else FINETUNE_DEFAULTS
        for name in ("steps", "batch_size", "lr", "val_every", "embedding_lr_scale"):
            if getattr(self, name) is None:
                setattr(self, name, defaults[name])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def job_events(spec: JobSpec, cancel: CancelLike | None = None) -> Iterator[Event]:
    """The engine's event stream for `spec` (runs in the child; usable in-process for tests too)."""
    from poco_core.data.io import load_recording
    from poco_core.data.preprocess import PreprocessConfig

    recs = [load_recording(r.path, **r.options) for r in spec.recordings]
    config = PreprocessConfig.from_dict(spec.preprocess) if spec.preprocess else None
    if spec.kind == "train":
        from poco_core.training.crossval import crossval_events
        from poco_core.training.train import train_events

        common = dict(model_config=spec.model_config, preprocess=config, context=spec.context, horizon=spec.horizon,
                      steps=spec.steps, batch_size=spec.batch_size, lr=spec.lr, seed=spec.seed, device=spec.device,
                      val_every=spec.val_every, checkpoint=spec.checkpoint, cancel=cancel,
                      sample_rois=spec.sample_rois or None, embedding_lr_scale=spec.embedding_lr_scale)
        if spec.cv_folds:
            return crossval_events(recs, spec.model, folds=spec.cv_folds, **common)
        return train_events(recs, model=spec.model, mlp_warmup=spec.mlp_warmup, **common)
    from poco_core.training.finetune import finetune_events

    return finetune_events(
        spec.init_checkpoint, recs, mode=spec.mode, preprocess=config, model_config=spec.model_config, steps=spec.steps,
        batch_size=spec.batch_size, lr=spec.lr, seed=spec.seed, device=spec.device,
        val_every=spec.val_every, checkpoint=spec.checkpoint, cancel=cancel, sample_rois=spec.sample_rois or None,
    )


def job_threads(requested: int = 0) -> int:
    """Torch threads for a job: as asked, or (0) every core but one, left to the GUI.

    Two torch threads on a 2-core machine that also draws napari wait on each other at every
    parallel region (measured 5-25x slower than one thread), so `auto` never takes all cores."""
    return requested if requested > 0 else max(1, (os.cpu_count() or 1) - 1)


class _BatchSender:
    """Send events in lists: step events wait up to `interval` seconds, the rest go at once."""

    def __init__(self, conn: Any, interval: float = BATCH_INTERVAL_S):
        self.conn = conn
        self.interval = interval
        self.pending: list[Event] = []
        self.last = time.monotonic()

    def send(self, event: Event) -> None:
        self.pending.append(event)
        now = time.monotonic()
        if event.get("type") != "step" or now - self.last >= self.interval:
            self.flush()
            self.last = now

    def flush(self) -> None:
        if self.pending:
            self.conn.send(self.pending)
            self.pending = []


def _cancel_on_sigterm(cancel: CancelLike) -> CancelLike:
    """SIGTERM (the GUI's force stop, `kill`) cancels like the GUI's Cancel: the best is saved first."""
    from poco_core.training.train import AnyCancelled  # torch: loaded in the child only

    term = CancelToken()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: term.cancel())
    return AnyCancelled(cancel, term)


def run_job(spec: JobSpec, conn: Any, cancel: CancelLike, events: Callable[..., Iterator[Event]] | None = None) -> None:
    """Child-process entry: stream `spec`'s events through `conn`; a failure becomes an error event.

    ``events(spec, cancel)`` (a module-level function, so it pickles) makes the stream; default
    :func:`job_events`. Higher layers pass their own (``poco_core.analysis.circuit.circuit_job_events``)."""
    if spec.nice and hasattr(os, "nice"):
        os.nice(spec.nice)  # the GUI process keeps priority over the job on a busy CPU
    from poco_core.base.allocator import keep_freed_memory

    keep_freed_memory()
    import torch

    torch.set_num_threads(job_threads(spec.threads))
    sender = _BatchSender(conn)
    last: Event = {}
    cancel = _cancel_on_sigterm(cancel)
    try:
        for last in (events or job_events)(spec, cancel):
            sender.send(last)
    except Exception as exc:  # report in plain words; the traceback goes to the child's stderr
        traceback.print_exc()
        if last.get("type") != "error":  # the engine's loop reports its own failures first
            message = str(exc) if isinstance(exc, PocoError) else f"{type(exc).__name__}: {exc}"
            sender.send({"type": "error", "message": message})
    finally:
        sender.flush()
        conn.close()
