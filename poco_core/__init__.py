"""POCO Studio engine: read recordings, preprocess, train/finetune POCO and baselines, forecast, analyse.

Headless: never imports Qt or napari. Most names are resolved lazily, so a CLI call does not pay
for readers (pynwb, h5py) or analysis (umap) it does not use.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Recording": "data.recording",
    "RecordingError": "base.errors",
    "PocoError": "base.errors",
    "CheckpointError": "base.errors",
    "load_recording": "data.io",
    "load_dataset": "data.io",
    "save_recording": "data.io",
    "PreprocessConfig": "data.preprocess",
    "prepare": "data.preprocess",
    "simulate_recording": "data.simulate",
    "simulate_cohort": "data.simulate",
    "available_models": "models",
    "build_model": "models",
    "resolve_device": "base.device",
    "CancelToken": "base.events",
    "load_model": "training.restore",
    "make_sample_data": "data.simulate",
    "analyze_model": "analysis.embedding",
    "EmbeddingAnalysis": "analysis.embedding",
    "LiveSession": "live",
    "LiveRecording": "live.sources",
    "replay": "live",
    "fit_circuit": "analysis.circuit",
    "load_circuit": "analysis.circuit",
    "CircuitConfig": "models.circuit_rnn",
    "simulate_three_regions": "data.circuit_sim",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'poco_core' has no attribute {name!r}")
    return getattr(importlib.import_module(f"poco_core.{module}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


# Bound eagerly (this is what makes `import poco_core` load torch). The old module paths of the
# same names (`poco_core.train`, ...) are callable shims (poco_core._moved), so importing one
# leaves `poco_core.train(...)` working.
from poco_core._moved import install as _install_moved  # noqa: E402
from poco_core.analysis.evaluate import evaluate  # noqa: E402
from poco_core.analysis.forecast import forecast, rolling_forecast  # noqa: E402
from poco_core.training.finetune import finetune  # noqa: E402
from poco_core.training.train import TrainRun, train  # noqa: E402

_install_moved()

__all__ = sorted([*_EXPORTS, "evaluate", "finetune", "forecast", "rolling_forecast", "TrainRun", "train"])
