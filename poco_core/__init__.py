"""POCO Studio engine: read recordings, preprocess, train/finetune POCO and baselines, forecast, analyse.

Headless: never imports Qt or napari. Most names are resolved lazily, so a CLI call does not pay
for readers (pynwb, h5py) or analysis (umap) it does not use.
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
    "load_model": "restore",
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


# These functions share their names with their modules. Importing a submodule sets the package
# attribute of that name to the module, which would shadow a lazy export, so they are bound
# eagerly (this is what makes `import poco_core` load torch).
from .evaluate import evaluate  # noqa: E402
from .finetune import finetune  # noqa: E402
from .forecast import forecast, rolling_forecast  # noqa: E402
from .train import TrainRun, train  # noqa: E402

__all__ = sorted([*_EXPORTS, "evaluate", "finetune", "forecast", "rolling_forecast", "TrainRun", "train"])
