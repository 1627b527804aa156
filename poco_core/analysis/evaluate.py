"""Results of evaluating a model on a split: per-session, per-dataset and overall tables
(CSV/JSON), the copy baseline included. The metrics themselves live in
`poco_core.training.validation`, which training's validation shares.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from poco_core.base.outputs import write_text
from poco_core.training.validation import (
    BASELINES,
    METRIC_COLUMNS,
    ErrorAccumulator,
    copy_forecast,
    evaluate_windows,
    prediction_score,
    session_metrics,
    summarise,
)

__all__ = ["EvalResult", "results_table", "table_to_csv", "table_to_json", "evaluate", "METRIC_COLUMNS",
           "ErrorAccumulator", "copy_forecast", "evaluate_windows", "prediction_score", "session_metrics", "summarise"]


@dataclass
class EvalResult:
    """Evaluation of one model on one split: per session, per dataset, and the mean over sessions."""

    model: str
    split: str
    sessions: dict[str, dict[str, Any]]
    datasets: dict[str, dict[str, float]] = field(default_factory=dict)
    mean: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.datasets and self.sessions:
            self.datasets, self.mean = summarise(self.sessions)

    @property
    def score(self) -> float:
        return self.mean.get("score", math.nan)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "split": self.split, "sessions": self.sessions,
                "datasets": self.datasets, "mean": self.mean}

    def rows(self, include_copy: bool = True) -> list[dict[str, Any]]:
        return results_table([self], include_copy=include_copy)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=_json_default)

    def to_csv(self, path: str | Path | None = None) -> str:
        return table_to_csv(self.rows(), path)


def results_table(results: Sequence[EvalResult], include_copy: bool = True) -> list[dict[str, Any]]:
    """Rows (model, dataset, session, score, mean_score, smooth_score, mse, mae, pearson) for every session,
    each dataset's mean (session "(mean)") and the overall mean (dataset "(all)").

    The baselines "copy", "mean" and "smoothed copy" (see `poco_core.training.validation`) are
    added once, first, with ``include_copy``. A baseline row's scores are its MSE against each
    reference (copy scores 0 against copy); on "(mean)" rows, against the references' mean MSEs.
    A baseline's Pearson r is not reported (copy's is not a forecast of change)."""
    rows: list[dict[str, Any]] = []

    def pick(m: dict, prefix: str) -> dict[str, Any]:
        if not prefix:
            return {k: m.get(k) for k in METRIC_COLUMNS}
        mse = m.get(f"{prefix}mse", math.nan)
        return {"score": prediction_score(mse, m.get("copy_mse", math.nan)),
                "mean_score": prediction_score(mse, m.get("mean_mse", math.nan)),
                "smooth_score": prediction_score(mse, m.get("smooth_mse", math.nan)),
                "mse": mse, "mae": m.get(f"{prefix}mae", math.nan), "pearson": math.nan}

    def add(model: str, r: EvalResult, prefix: str) -> None:
        for name, m in r.sessions.items():
            rows.append({"model": model, "dataset": m.get("dataset", "default"), "session": name, **pick(m, prefix)})
        for ds, m in r.datasets.items():
            rows.append({"model": model, "dataset": ds, "session": "(mean)", **pick(m, prefix)})
        rows.append({"model": model, "dataset": "(all)", "session": "(mean)", **pick(r.mean, prefix)})

    if include_copy and results:
        for name, prefix in BASELINES:
            if not any(r.model == name for r in results):
                add(name, results[0], prefix)
    for r in results:
        add(r.model, r, "")
    return rows


def table_to_csv(rows: list[dict[str, Any]], path: str | Path | None = None) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = buf.getvalue()
    if path is not None:
        write_text(path, text)
    return text


def table_to_json(rows: list[dict[str, Any]], path: str | Path | None = None) -> str:
    text = json.dumps(rows, default=_json_default)
    if path is not None:
        write_text(path, text)
    return text


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def evaluate(model: torch.nn.Module, data, split: str = "test", *, name: str | None = None, **kwargs: Any) -> EvalResult:
    """Evaluate a model on PreparedData, or on recordings of its sessions (normalised with the
    model's stored preprocessing); options as in `evaluate_windows`. Copy baseline included."""
    if not hasattr(data, "sessions"):
        from poco_core.training.restore import prepare_for_model

        data = prepare_for_model(model, data)
    sessions = evaluate_windows(model, data, split, **kwargs)
    return EvalResult(name or getattr(model, "name", type(model).__name__.lower()), split, sessions)
