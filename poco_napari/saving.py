"""Save from the GUI what the CLI saves, in the same formats, through the engine's writers:
score tables as ``poco evaluate --out`` writes them, embedding/cluster tables as ``poco embed
--out``, forecasts as ``poco forecast --out`` (an ``.npz`` of t, frames, z, unit_ids, values).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def save_score_table(sessions: dict[str, dict[str, Any]], split: str, path: str | Path, model: str = "model") -> Path:
    """The per-session scores as evaluate's results table (copy, and the engine's other
    baselines, as model rows): ``.json`` or CSV by suffix."""
    from poco_core.analysis.evaluate import EvalResult, table_to_csv, table_to_json

    path = Path(path)
    rows = EvalResult(model, split, sessions).rows()
    (table_to_json if path.suffix.lower() == ".json" else table_to_csv)(rows, path)
    return path


def save_embedding(result: Any, path: str | Path) -> list[Path]:
    """An embedding analysis as ``poco embed --out``: ``.csv`` (+ region similarity) or ``.h5``."""
    from poco_core.analysis.embedding import save_results

    return save_results(result, path)


def forecast_arrays(fc: Any, fs: float) -> dict[str, np.ndarray]:
    """The arrays ``poco forecast --out`` stores, plus the rate and each step's time in seconds."""
    arrays = {"t": fc.t, "frames": fc.frames, "z": fc.z, "unit_ids": np.array(fc.unit_ids),
              "fs": np.float64(fs), "time_s": np.asarray(fc.frames) / fs}
    if fc.values is not None:
        arrays["values"] = fc.values
    return arrays


def save_forecasts(model: Any, recording: Any, path: str | Path, step: int | None = None) -> Path:
    """Rolling forecasts over the whole recording (every ``step`` frames, default the horizon)."""
    from poco_core.analysis.forecast import rolling_forecast

    c, p = model.config.context, model.config.horizon
    fc = rolling_forecast(model, recording, c - 1, recording.n_frames - p, step or p)
    path = Path(path)
    np.savez(path, **forecast_arrays(fc, float(recording.fs)))
    return path
