"""POCO Studio engine: read recordings, preprocess, train/finetune POCO and baselines, forecast, analyse.

Headless: never imports Qt or napari. Names are resolved lazily so `import poco_core` stays cheap
(a spawned training process or a CLI call pays only for what it uses).
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Recording": "recording",
    "RecordingError": "errors",
    "PocoError": "errors",
    "CheckpointError": "errors",
    "load_recording": "io",
    "load_dataset": "io",
    "save_recording": "io",
    "PreprocessConfig": "preprocess",
    "prepare": "preprocess",
    "simulate_recording": "simulate",
    "simulate_cohort": "simulate",
    "available_models": "models",
    "build_model": "models",
    "resolve_device": "device",
    "CancelToken": "events",
    "train": "train",
    "TrainRun": "train",
    "load_model": "restore",
    "evaluate": "evaluate",
    "finetune": "finetune",
    "forecast": "forecast",
    "rolling_forecast": "forecast",
    "make_sample_data": "simulate",
    "analyze_model": "embedding",
    "EmbeddingAnalysis": "embedding",
    "LiveSession": "live",
    "LiveRecording": "live_sources",
    "replay": "live",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'poco_core' has no attribute {name!r}")
    return getattr(importlib.import_module(f"poco_core.{module}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = sorted(_EXPORTS)
