"""Metric formulas and results tables (pure functions: no model needed)."""
from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import torch

from poco_core.analysis.evaluate import (
    ErrorAccumulator,
    EvalResult,
    copy_forecast,
    prediction_score,
    results_table,
    session_metrics,
    table_to_json,
)


def windows(b=5, c=6, p=3, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(b, c + p, n, generator=g, dtype=torch.float64)
    return w[:, :c], w[:, c:]


def test_copy_scores_zero_and_perfect_scores_one():
    ctx, target = windows()
    copy = session_metrics(copy_forecast(ctx, 3), target, ctx)
    assert copy["score"] == pytest.approx(0.0) and copy["mse"] == pytest.approx(copy["copy_mse"])
    perfect = session_metrics(target, target, ctx)
    assert perfect["score"] == 1.0 and perfect["mse"] == 0 and perfect["mae"] == 0


def test_formulas_match_direct_computation_and_streaming():
    ctx, target = windows(b=7)
    pred = target + 0.5 * torch.randn_like(target)
    m = session_metrics(pred, target, ctx)
    mse = ((pred - target) ** 2).mean().item()
    copy_mse = ((ctx[:, -1:] - target) ** 2).mean().item()
    assert m["mse"] == pytest.approx(mse) and m["mae"] == pytest.approx((pred - target).abs().mean().item())
    assert m["score"] == pytest.approx(1 - mse / copy_mse)
    np.testing.assert_allclose(m["per_step_mse"], ((pred - target) ** 2).mean(dim=(0, 2)).numpy())
    acc = ErrorAccumulator(3)  # batches of any size give the same numbers
    for sl in (slice(0, 2), slice(2, 7)):
        acc.update(pred[sl], target[sl], ctx[sl, -1])
    assert acc.metrics()["mse"] == pytest.approx(mse) and acc.metrics()["n_windows"] == 7


def test_dataset_score_is_unweighted_mean_over_sessions():
    r = EvalResult("m", "test", {
        "a": {"dataset": "d", "score": 0.2, "mse": 1.0, "mae": 1.0, "copy_mse": 2.0, "copy_mae": 1.0, "n_windows": 1000},
        "b": {"dataset": "d", "score": 0.6, "mse": 3.0, "mae": 2.0, "copy_mse": 4.0, "copy_mae": 3.0, "n_windows": 10},
        "c": {"dataset": "e", "score": 0.1, "mse": 1.0, "mae": 1.0, "copy_mse": 1.0, "copy_mae": 1.0, "n_windows": 5},
    })
    assert r.datasets["d"]["score"] == pytest.approx(0.4) and r.datasets["d"]["n_sessions"] == 2
    assert r.mean["score"] == pytest.approx(0.3)
    assert math.isnan(prediction_score(1.0, 0.0))


def test_table_always_includes_copy_and_exports():
    ctx, target = windows()
    m = session_metrics(target * 0.9, target, ctx)
    r1 = EvalResult("poco", "test", {"s1": {"dataset": "d", **m}})
    r2 = EvalResult("mlp", "test", {"s1": {"dataset": "d", **m}})
    rows = results_table([r1, r2])
    assert [r["model"] for r in rows if r["dataset"] == "(all)"] == ["copy", "mean", "smoothed copy", "poco", "mlp"]
    copy_rows = [r for r in rows if r["model"] == "copy"]
    assert all(r["score"] == 0.0 and r["mse"] == pytest.approx(m["copy_mse"]) for r in copy_rows)
    parsed = list(csv.DictReader(io.StringIO(r1.to_csv())))
    assert {p["model"] for p in parsed} == {"copy", "mean", "smoothed copy", "poco"} and set(parsed[0]) == {"model", "dataset", "session", "score", "mean_score", "smooth_score", "mse", "mae", "pearson"}
    assert json.loads(r1.to_json())["sessions"]["s1"]["score"] == pytest.approx(m["score"])
    assert len(json.loads(table_to_json(rows))) == len(rows)


def test_evaluate_accepts_recordings_of_a_loaded_model(tmp_path):
    from test_train_support import FAST, cohort, prepared

    from poco_core.analysis.evaluate import evaluate
    from poco_core.training.restore import load_model
    from poco_core.training.train import train

    data = prepared(cohort()[:2])
    done = train(data, "nlinear", steps=3, val_every=3, checkpoint=tmp_path / "m.pt", context=12, horizon=4, **FAST).wait()
    model = load_model(tmp_path / "m.pt")
    by_recs, by_data = evaluate(model, list(cohort()[:2])), evaluate(model, data)
    assert by_recs.score == pytest.approx(by_data.score) == pytest.approx(done["test"]["score"])
    assert by_recs.model == "nlinear"


def test_pearson_per_window_and_unit_then_averaged():
    from poco_core.training.validation import CorrelationAccumulator

    g = torch.Generator().manual_seed(0)
    target = torch.randn(6, 8, 5, generator=g)
    acc = CorrelationAccumulator()
    acc.update(target[:3] * 2 + 1, target[:3])  # exact up to scale: r = 1
    acc.update(-target[3:], target[3:])  # r = -1
    assert acc.metrics()["pearson"] == pytest.approx(0.0, abs=1e-12)
    copy = CorrelationAccumulator()
    copy.update(target[:, -1:].expand(-1, 8, -1), target)  # constant forecast: no correlation
    assert math.isnan(copy.metrics()["pearson"])
    pred = target + torch.randn(6, 8, 5, generator=g)
    acc = CorrelationAccumulator()
    acc.update(pred, target)
    expected = np.mean([[np.corrcoef(pred[b, :, n], target[b, :, n])[0, 1] for n in range(5)] for b in range(6)])
    assert acc.metrics()["pearson"] == pytest.approx(expected, rel=1e-9)
