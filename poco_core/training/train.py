"""Training a forecaster on prepared sessions: an event generator and a notebook-friendly handle.

`train_events(...)` yields the plain event dicts of docs/ARCHITECTURE.md ("Events");
`train(...)` wraps them in a `TrainRun` you can iterate or `wait()` on. The DDP entry point
(`torchrun --nproc-per-node=N -m poco_core.cli.train DATA... --out CKPT`) takes the arguments of
`poco train` and lives with the CLI.
"""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

from poco_core.base.errors import PocoError
from poco_core.base.events import CancelLike, CancelToken, Event
from poco_core.data.identity import fingerprint, refuse_duplicates
from poco_core.data.preprocess import PreparedData, PreprocessConfig, prepare
from poco_core.data.recording import Recording
from poco_core.models import BaseForecaster, SessionSpec, build_model
from poco_core.training.checkpoint import load_checkpoint
from poco_core.training.defaults import TRAIN_DEFAULTS
from poco_core.training.loop import Loop, LoopOptions, LoopState, seed_everything
from poco_core.training.restore import model_from_checkpoint, model_payload

DataLike = PreparedData | Recording | Sequence[Recording]


def loop_options(options: dict[str, Any]) -> LoopOptions:
    """LoopOptions from keyword arguments, naming any unknown one."""
    known = {f.name for f in dataclasses.fields(LoopOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise PocoError(f"unknown training option(s) {unknown}; options: {sorted(known)}")
    return LoopOptions(**options)


def as_prepared(data: DataLike, preprocess: PreprocessConfig | None = None) -> PreparedData:
    """PreparedData as given, or recordings preprocessed with `preprocess` (fitted per session)."""
    if isinstance(data, PreparedData):
        return data
    return prepare(data, preprocess or PreprocessConfig())


def session_specs(data: PreparedData) -> list[SessionSpec]:
    return [SessionSpec(sd.session, sd.dataset, list(sd.unit_ids)) for sd in data.sessions]


def _resume_state(ckpt: dict) -> LoopState:
    return LoopState(step=int(ckpt["step"]), optimizer=ckpt.get("optimizer"), rng=ckpt.get("rng"),
                     history=ckpt.get("history") or {"loss": [], "validation": []},
                     best_val_mse=float(ckpt.get("best_val_mse", float("inf"))), best_step=int(ckpt["step"]))


def default_checkpoint(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix="poco-run-")) / f"{name}.pt"


def train_events(
    data: DataLike,
    model: str | BaseForecaster = "poco",
    *,
    checkpoint: str | Path | None = None,
    model_config: dict[str, Any] | None = None,
    preprocess: PreprocessConfig | None = None,
    context: int | None = None,
    horizon: int | None = None,
    resume: str | Path | None = None,
    cancel: CancelLike | None = None,
    dist: Any = None,
    fingerprints: dict[str, dict] | None = None,
    **options: Any,
) -> Iterator[Event]:
    """Train `model` (a registry name or a built model) on `data`; yields event dicts.

    `options` are `LoopOptions` fields (steps, batch_size, lr, val_every, seed, device, bf16...).
    `resume` continues from a checkpoint's model, optimiser, step and RNG state (the data must
    be the same sessions). `dist` is a `poco_core.training.distributed.DistContext` under torchrun.
    `fingerprints`: the recordings' (`recording_fingerprints`) where `data` is PreparedData made from
    them (cross-validation's folds), so the checkpoint still names what it was trained on.
    """
    opts = loop_options(options)
    prepared = as_prepared(data, preprocess)
    prints = fingerprints if fingerprints is not None else recording_fingerprints(data, prepared)
    state = LoopState()
    if resume is not None:
        ckpt = load_checkpoint(resume)
        net = model_from_checkpoint(ckpt, resume)
        state = _resume_state(ckpt)
        checkpoint = Path(checkpoint or resume)
        if Path(resume).resolve() != checkpoint.resolve():
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(resume, checkpoint)  # the run's best so far lives at the new path too
        _check_sessions(net, prepared)
    elif isinstance(model, BaseForecaster):
        net = model
        _check_sessions(net, prepared)
    else:
        overrides = dict(model_config or {})
        overrides.update({k: v for k, v in (("context", context), ("horizon", horizon)) if v is not None})
        seed_everything(opts.seed)  # identical initial weights for identical seeds (and on every rank)
        net = build_model(model, session_specs(prepared), **overrides)
    checkpoint = Path(checkpoint) if checkpoint else default_checkpoint(net.name)
    if hasattr(net, "fit_session") and resume is None:  # not gradient-trained (curbd): fit each session first
        for sd in prepared.sessions:
            yield from net.fit_session(sd, cancel=cancel)
    states = {sd.session: sd.state for sd in prepared.sessions}
    loop = Loop(net, prepared, [p for p in net.parameters() if p.requires_grad], opts, checkpoint,
                lambda: model_payload(net, states, prepared.config, prints), cancel, state, kind="train",
                **(dist.loop_kwargs(cancel) if dist else {}))
    yield from announced(loop.run(), prepared, rate_warnings(prepared, context=net.config.context), net)


def rates(data: PreparedData) -> dict[str, float]:
    """Each session's model-space rate in Hz (after any binning)."""
    return {sd.session: float(sd.state.fs) for sd in data.sessions}


def _same_rate(a: float, b: float) -> bool:
    return abs(a - b) <= 0.01 * max(a, b)


def _rate_list(fs: dict[str, float]) -> str:
    return ", ".join(f"{name} {rate:.4g} Hz" for name, rate in fs.items())


def rate_warnings(data: PreparedData, trained: dict[str, float] | None = None, context: int | None = None) -> list[str]:
    """Warnings when sessions of different rates share one model, or (``trained``: the rates a
    model was trained at) when new sessions come at a rate the model never saw."""
    fs = rates(data)
    out = []
    if any(not _same_rate(r, next(iter(fs.values()))) for r in fs.values()):
        span = f"; a context of {context} frames spans {context / max(fs.values()):.3g} to {context / min(fs.values()):.3g} s" \
            if context else ""
        out.append(f"sessions at different rates in one model ({_rate_list(fs)}){span}; bin them to one rate "
                   "(target_fs / --target-fs) so frames mean the same time")
    if trained:
        seen = list(trained.values())
        new = {k: r for k, r in fs.items() if not any(_same_rate(r, t) for t in seen)}
        if new:
            out.append(f"{_rate_list(new)}: the model was trained at {', '.join(sorted({f'{t:.4g} Hz' for t in seen}))}; "
                       "bin to that rate (target_fs / --target-fs) or expect poorer forecasts")
    return out


def announced(events: Iterator[Event], data: PreparedData, warnings: list[str], model: BaseForecaster) -> Iterator[Event]:
    """The run's events with the start event saying what preprocessing did, each session's rate,
    context and horizon, and any `warnings`; each warning also follows as a `warning` event."""
    for event in events:
        if event["type"] == "start":
            event.update(warnings=list(warnings), fs=rates(data), context=model.config.context,
                         horizon=model.config.horizon,
                         preprocess_report={sd.session: sd.state.report() for sd in data.sessions})
            yield event
            for message in warnings:
                yield {"type": "warning", "message": message}
            continue
        yield event


def recording_fingerprints(data: DataLike, prepared: PreparedData) -> dict[str, dict]:
    """Each session's fingerprint (none for PreparedData, which no longer holds the recordings);
    the same recording given twice is refused."""
    if isinstance(data, PreparedData):
        return {}
    recs = [data] if isinstance(data, Recording) else list(data)
    refuse_duplicates(recs)
    return {sd.session: fingerprint(rec) for sd, rec in zip(prepared.sessions, recs)}


def _check_sessions(model: BaseForecaster, data: PreparedData) -> None:
    for sd in data.sessions:
        spec = model.session_spec(sd.session)
        if list(spec.unit_ids) != list(sd.unit_ids):
            raise PocoError(f"session {sd.session!r}: its units differ from the ones the model was trained on")


class TrainRun:
    """A training (or finetuning) run: iterate `events()`, or `wait()` for the `done` event.

    The run starts when events are first pulled; `cancel()` stops it at the next step and
    keeps the best checkpoint so far. `model` is the trained model once the run is done.
    """

    def __init__(self, events: Iterator[Event], checkpoint: Path | None, token: CancelToken):
        self._events = events
        self._token = token
        self.best_checkpoint: Path | None = checkpoint
        self.result: Event | None = None
        self.validations: list[Event] = []
        self.losses: list[float] = []

    def events(self) -> Iterator[Event]:
        for event in self._events:
            kind = event["type"]
            if kind == "step":
                self.losses.append(event["loss"])
            elif kind == "validation":
                self.validations.append(event)
            elif kind == "checkpoint":
                self.best_checkpoint = Path(event["path"])
            elif kind == "done":
                self.result = event
                self.best_checkpoint = Path(event["checkpoint"])
            yield event

    def wait(self) -> Event:
        for _ in self.events():
            pass
        if self.result is None:
            raise PocoError("the run ended without a result")
        return self.result

    def cancel(self) -> None:
        self._token.cancel()

    @property
    def model(self) -> BaseForecaster:
        """The best model (loaded from the checkpoint, with its preprocessing)."""
        from poco_core.training.restore import load_model

        if self.result is None or self.best_checkpoint is None:
            raise PocoError("the run has not finished; call wait() first")
        return load_model(self.best_checkpoint)


def train(data: DataLike, model: str | BaseForecaster = "poco", steps: int | None = TRAIN_DEFAULTS["steps"], device: str = "auto",
          checkpoint: str | Path | None = None, *, cancel: CancelLike | None = None, **kwargs: Any) -> TrainRun:
    """Notebook entry: `run = train(data, "poco", steps=2000, hidden=64)`; `run.wait()`.
    ``steps=None``: the paper's budget (5,000 steps for one session, 10,000 for several).

    Keyword arguments are training options (see `LoopOptions`), `preprocess`, `resume`,
    `model_config`, `context`, `horizon`, or -- anything else -- fields of the model's config.
    Without `checkpoint` the best model goes to a fresh temporary folder (`run.best_checkpoint`).
    """
    return start_run(train_events, data, model, steps, device, checkpoint, cancel, kwargs)


def start_run(events_fn: Any, data: DataLike, model: str | BaseForecaster, steps: int | None, device: str,
              checkpoint: str | Path | None, cancel: CancelLike | None, kwargs: dict[str, Any]) -> TrainRun:
    """A `TrainRun` of ``events_fn`` (`train_events` or one with its signature), the keyword arguments
    sorted into training options and model config fields as `train` describes."""
    known = {f.name for f in dataclasses.fields(LoopOptions)} | {"preprocess", "resume", "model_config", "context", "horizon"}
    model_config = {**kwargs.pop("model_config", {}), **{k: kwargs.pop(k) for k in list(kwargs) if k not in known}}
    name = model if isinstance(model, str) else model.name
    checkpoint = Path(checkpoint) if checkpoint else (None if kwargs.get("resume") else default_checkpoint(name))
    token = CancelToken()
    combined = AnyCancelled(token, cancel)
    events = events_fn(data, model, checkpoint=checkpoint, model_config=model_config, cancel=combined,
                       steps=steps, device=device, **kwargs)
    return TrainRun(events, checkpoint, token)


class AnyCancelled:
    """A cancel token set when any of the given ones is (the run's own and the caller's)."""

    def __init__(self, *tokens: CancelLike | None):
        self.tokens = [t for t in tokens if t is not None]

    def is_set(self) -> bool:
        return any(t.is_set() for t in self.tokens)
