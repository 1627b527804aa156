"""A trained model back from its checkpoint, with the preprocessing that goes with it.

`load_model(path)` returns the model itself (an nn.Module, ready for `evaluate`/`forecast`)
with ``model.poco_meta``: a `ModelInfo` holding each session's fitted `PreprocessState`, so
new frames of a known session are normalised exactly as in training -- never re-fitted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from poco_core.base.errors import CheckpointError, PocoError, RecordingError
from poco_core.data.identity import check_identity
from poco_core.data.preprocess import (
    PreparedData,
    PreprocessConfig,
    PreprocessState,
    SessionData,
    model_values,
    split_blocks,
)
from poco_core.data.recording import Recording
from poco_core.models import BaseForecaster, model_from_dict, model_to_dict
from poco_core.training.checkpoint import (
    check_finite_weights,
    check_positive,
    load_checkpoint,
)


@dataclass
class ModelInfo:
    """What a checkpoint knows besides the weights."""

    preprocess: dict[str, PreprocessState]
    preprocess_config: PreprocessConfig
    history: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    step: int = 0
    path: str = ""
    package_version: str = ""
    fingerprints: dict = field(default_factory=dict)  # session -> poco_core.data.identity.fingerprint
    population: dict | None = None  # a run kept at its MLP: its population stage's best unit rows (`training.loop`)


def model_payload(model: BaseForecaster, states: dict[str, PreprocessState], config: PreprocessConfig,
                  fingerprints: dict[str, dict] | None = None) -> dict[str, Any]:
    """The checkpoint fields that describe the model, its preprocessing and its sessions' recordings."""
    return {"model": model_to_dict(model), "preprocess": {k: s.to_dict() for k, s in states.items()},
            "preprocess_config": config.to_dict(), "fingerprints": dict(fingerprints or {})}


def model_from_checkpoint(ckpt: dict, path: str | Path = "") -> BaseForecaster:
    """Rebuild the model of a loaded checkpoint dict and attach `poco_meta`."""
    try:
        check_finite_weights(ckpt["model"]["state_dict"], path)
        for name, st in ckpt["preprocess"].items():
            if st.get("std") is not None:
                check_positive(st["std"], f"the normaliser (std) of session {name!r}", path)
        model = model_from_dict(ckpt["model"])
        info = ModelInfo(
            preprocess={k: PreprocessState.from_dict(v) for k, v in ckpt["preprocess"].items()},
            preprocess_config=PreprocessConfig.from_dict(ckpt["preprocess_config"]),
            history=ckpt.get("history") or {}, metrics=ckpt.get("metrics") or {}, step=int(ckpt.get("step", 0)),
            path=str(path), package_version=str(ckpt.get("package_version", "")),
            fingerprints=dict(ckpt.get("fingerprints") or {}), population=ckpt.get("population_embeddings"),
        )
    except CheckpointError:
        raise
    except (KeyError, TypeError, AttributeError, PocoError) as exc:
        raise CheckpointError(f"{path}: checkpoint content is incomplete or inconsistent ({exc})") from exc
    model.poco_meta = info
    model.eval()
    return model


def load_model(path: str | Path) -> BaseForecaster:
    """The model stored at `path` (on the CPU, eval mode) with `model.poco_meta: ModelInfo`."""
    return model_from_checkpoint(load_checkpoint(path), path)


def model_info(model: BaseForecaster) -> ModelInfo:
    info = getattr(model, "poco_meta", None)
    if info is None:
        raise PocoError("this model carries no preprocessing state; load it with poco_core.load_model(checkpoint)")
    return info


def session_state(model: BaseForecaster, session: str) -> PreprocessState:
    states = model_info(model).preprocess
    if session not in states:
        raise PocoError(f"the model was not trained on session {session!r} (it knows {', '.join(states) or 'none'}); "
                        "finetune it on this recording first (poco finetune)")
    return states[session]


def rate_warnings(model: BaseForecaster, recs: Sequence[Recording]) -> list[str]:
    """Recordings whose rate differs from the one their session's preprocessing was fitted at."""
    out = []
    for rec in recs:
        state = model_info(model).preprocess.get(rec.session)
        if state is not None and abs(rec.fs - state.input_fs) > 0.01 * state.input_fs:
            out.append(f"session {rec.session!r}: the recording is at {rec.fs:g} Hz but the model was trained on it at "
                       f"{state.input_fs:g} Hz (binned to {state.fs:.4g} Hz); frames mean other times than in training")
    return out


def prepare_for_model(model: BaseForecaster, recs: Recording | Sequence[Recording]) -> PreparedData:
    """Recordings of sessions the model knows, preprocessed with the model's own fitted states."""
    recs = [recs] if isinstance(recs, Recording) else list(recs)
    config = model_info(model).preprocess_config
    sessions = []
    for rec in recs:
        state = session_state(model, rec.session)
        if rec.n_rois != state.n_input:
            raise RecordingError(rec.source or None, f"session {rec.session!r} has {rec.n_rois} ROIs but the model "
                                 f"was trained on {state.n_input}")
        check_recording(model, rec)
        values = model_values(state, rec)
        sessions.append(SessionData(rec.session, rec.dataset, list(state.unit_ids), values,
                                    state, split_blocks(len(values), config.block_len, config.split), rec.source))
    return PreparedData(sessions=sessions, config=config)


def check_recording(model: BaseForecaster, rec: Recording, traces: bool = True) -> None:
    """Refuse a recording that is not the one its session was trained on (see data/identity.py)."""
    check_identity(rec, model_info(model).fingerprints.get(rec.session), rec.session, traces)
