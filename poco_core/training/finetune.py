"""Adapting a pretrained model to new sessions (POCO_SPEC.md, "Finetuning on a new session").

Each new session gets fresh unit/session embeddings via `model.add_session`; mode
``embeddings`` trains only the parameters that call created, ``embeddings+mlp`` adds the
forecaster MLP, ``all`` trains everything. Frozen parameters have ``requires_grad=False``, so
autograd only follows the embeddings' path; for models exposing ``hidden_states`` (POCO) the
MLP hidden layer is computed once per window outside autograd. Same loop, events and
cancellation as training (`poco_core.training.loop`), validating as FINETUNE_DEFAULTS says (every 20 steps on at most 64 windows per
session); with the MLP frozen the validation windows' hidden layers are computed once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from torch import nn

from poco_core.base.errors import PocoError
from poco_core.base.events import CancelLike, CancelToken, Event
from poco_core.data.identity import check_identity
from poco_core.data.preprocess import PreparedData, PreprocessConfig
from poco_core.data.recording import Recording
from poco_core.models import BaseForecaster, SessionSpec
from poco_core.training.defaults import CONSTANT_FILM, EMBEDDING_ANALYSIS_HOW, FINETUNE_DEFAULTS
from poco_core.training.defaults import FINETUNE_MODES as MODES
from poco_core.training.loop import Loop
from poco_core.training.restore import load_model, model_info, model_payload
from poco_core.training.train import (
    AnyCancelled,
    DataLike,
    TrainRun,
    announced,
    as_prepared,
    default_checkpoint,
    loop_options,
    recording_fingerprints,
    rate_warnings,
)

# the base model's FiLM maps are zero: d forecast / d embedding = 0, so embedding-only finetuning is a no-op
EMBEDDINGS_IGNORED = (f"finetuning only the embeddings changes nothing: {CONSTANT_FILM}. Finetune with mode 'all' "
                      f"(--mode all), or train the base model with {EMBEDDING_ANALYSIS_HOW}")


def attach_sessions(model: BaseForecaster, data: PreparedData) -> list[nn.Parameter]:
    """Add the sessions of `data` the model lacks; return the parameters that creates.

    A session the model already knows (same id and units) keeps its embeddings and they are
    trained again; the same id with different units is an error."""
    known = {s.session for s in model.sessions}
    before = {id(p) for p in model.parameters()}
    for sd in data.sessions:
        if sd.session in known:
            if list(model.session_spec(sd.session).unit_ids) != list(sd.unit_ids):
                raise PocoError(f"the model already has a session {sd.session!r} with other units; "
                                "give the new recording a distinct session name")
            continue
        model.add_session(SessionSpec(sd.session, sd.dataset, list(sd.unit_ids)))
    fresh = [p for p in model.parameters() if id(p) not in before]
    reused = {model.session_key(sd.session) for sd in data.sessions if sd.session in known}
    groups = model.parameter_groups()
    emb_ids = {id(p) for p in groups["embeddings"]}
    named = [p for n, p in model.named_parameters() if id(p) in emb_ids and reused & set(n.split("."))]
    return fresh + named


def select_trainable(model: BaseForecaster, session_params: list[nn.Parameter], mode: str) -> list[nn.Parameter]:
    """Freeze everything, then unfreeze what `mode` trains; returns the trainable parameters."""
    if mode not in MODES:
        raise PocoError(f"unknown finetune mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "all":
        chosen = list(model.parameters())
    else:
        chosen = session_params + (model.parameter_groups()["mlp"] if mode == "embeddings+mlp" else [])
    ids = {id(p) for p in chosen}
    for p in model.parameters():
        p.requires_grad_(id(p) in ids)
    return [p for p in model.parameters() if id(p) in ids]


def set_runtime_config(model: BaseForecaster, values: dict[str, Any]) -> None:
    """Set config fields that only change how forecasts are made (the config's ``RUNTIME``, e.g.
    CalM's rollout settings) on a trained model; they are saved with its checkpoints."""
    allowed = type(model.config).RUNTIME
    for key, value in values.items():
        if key not in allowed:
            can = ", ".join(allowed) if allowed else "none"
            raise PocoError(f"{model.name}: {key!r} cannot change after training (settable here: {can})")
        setattr(model.config, key, type(getattr(model.config, key))(value))


def finetune_events(
    model: BaseForecaster | str | Path,
    data: DataLike,
    *,
    mode: str = "embeddings",
    checkpoint: str | Path | None = None,
    preprocess: PreprocessConfig | None = None,
    cancel: CancelLike | None = None,
    dist: Any = None,
    model_config: dict[str, Any] | None = None,
    **options: Any,
) -> Iterator[Event]:
    """Finetune `model` (or the checkpoint at that path) on new sessions; yields event dicts.

    New recordings are preprocessed with the model's own preprocessing config unless
    `preprocess` is given; `model_config` sets runtime fields (`set_runtime_config`) before
    validation uses them; `options` are `LoopOptions` fields (defaults: FINETUNE_DEFAULTS).
    """
    base_path = None if isinstance(model, BaseForecaster) else str(model)
    net = load_model(model) if base_path else model
    set_runtime_config(net, model_config or {})
    info = model_info(net)
    opts = loop_options({**FINETUNE_DEFAULTS, **options})
    for rec in [data] if isinstance(data, Recording) else ([] if isinstance(data, PreparedData) else list(data)):
        check_identity(rec, info.fingerprints.get(rec.session), rec.session,
                       hint="give the new recording a distinct session name")
    prepared = as_prepared(data, preprocess or info.preprocess_config)
    info.fingerprints.update(recording_fingerprints(data, prepared))
    warnings = rate_warnings(prepared, {k: s.fs for k, s in info.preprocess.items()}, net.config.context)
    if mode == "embeddings" and net.ignores_conditioning():
        warnings.append(EMBEDDINGS_IGNORED)
    session_params = attach_sessions(net, prepared)
    trainable = select_trainable(net, session_params, mode)
    for sd in prepared.sessions:
        info.preprocess[sd.session] = sd.state
    checkpoint = Path(checkpoint) if checkpoint else default_checkpoint(f"{net.name}-finetuned")
    extra = {"finetune": {"mode": mode, "base": base_path or info.path, "sessions": [sd.session for sd in prepared.sessions]}}
    loop = Loop(net, prepared, trainable, opts, checkpoint,
                lambda: {**model_payload(net, info.preprocess, info.preprocess_config, info.fingerprints), **extra}, cancel,
                kind="finetune", frozen_hidden=mode == "embeddings" and hasattr(net, "hidden_states"),
                **(dist.loop_kwargs(cancel) if dist else {}))
    yield from announced(loop.run(), prepared, warnings, net)


def finetune(model: BaseForecaster | str | Path, data: DataLike, mode: str = "embeddings", steps: int = FINETUNE_DEFAULTS["steps"],
             checkpoint: str | Path | None = None, *, cancel: CancelLike | None = None, **options: Any) -> TrainRun:
    """Notebook entry: `run = finetune(model, new_recs, steps=200)`; `run.wait()`; `run.model`.

    The model passed in is changed in place (new sessions added, weights trained); the best
    weights are in `run.best_checkpoint`.
    """
    name = model.name if isinstance(model, BaseForecaster) else "model"
    checkpoint = Path(checkpoint) if checkpoint else default_checkpoint(f"{name}-finetuned")
    token = CancelToken()
    events = finetune_events(model, data, mode=mode, checkpoint=checkpoint, cancel=AnyCancelled(token, cancel),
                             steps=steps, **options)
    return TrainRun(events, checkpoint, token)
