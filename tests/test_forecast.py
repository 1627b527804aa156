"""Forecasts: only frames up to t are read, both unit systems, rolling equals single forecasts."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from test_train_support import CONTEXT, HORIZON, PREP, TINY_POCO, cohort, prepared

from poco_core.analysis.forecast import forecast, rolling_forecast
from poco_core.base.errors import PocoError
from poco_core.models import build_model
from poco_core.training.restore import ModelInfo
from poco_core.training.train import session_specs


class GuardedTraces:
    """Array stand-in that fails the test if any row after `last` is read."""

    def __init__(self, a: np.ndarray, last: int):
        self.a, self.last, self.shape, self.dtype = a, last, a.shape, a.dtype

    def __getitem__(self, key):
        rows = key[0] if isinstance(key, tuple) else key
        stop = rows.stop if isinstance(rows, slice) else None
        if stop is None or stop > self.last + 1:
            raise AssertionError(f"read rows {rows} beyond frame {self.last}")
        return self.a[key]


@pytest.fixture(scope="module")
def model_and_rec():
    rec = cohort()[0]
    data = prepared([rec])
    torch.manual_seed(0)
    model = build_model("poco", session_specs(data), **TINY_POCO)
    for p in model.head.alpha.parameters():  # make the encoder matter (it is zero-initialised)
        torch.nn.init.normal_(p, std=0.5)
    model.poco_meta = ModelInfo({rec.session: data.sessions[0].state}, PREP)
    return model.eval(), rec


def test_uses_no_frame_after_t(model_and_rec):
    model, rec = model_and_rec
    t = 300
    clean = forecast(model, rec, t)
    poisoned = np.array(rec.traces, copy=True)
    poisoned[t + 1:] = np.nan  # the preprocessing rejects NaN if it ever sees them
    guarded = replace(rec, traces=GuardedTraces(poisoned, t))
    fc = forecast(model, guarded, t)
    np.testing.assert_array_equal(fc.z, clean.z)
    np.testing.assert_array_equal(fc.frames, [np.arange(t + 1, t + 1 + HORIZON)])


def test_context_ends_at_t_inclusive(model_and_rec):
    model, rec = model_and_rec
    t = 200
    changed = np.array(rec.traces, copy=True)
    changed[t] += 5.0
    assert not np.allclose(forecast(model, replace(rec, traces=changed), t).z, forecast(model, rec, t).z)
    changed = np.array(rec.traces, copy=True)
    changed[t - CONTEXT] += 5.0  # just before the context: no effect
    np.testing.assert_array_equal(forecast(model, replace(rec, traces=changed), t).z, forecast(model, rec, t).z)


def test_original_units_and_rolling(model_and_rec):
    model, rec = model_and_rec
    state = model.poco_meta.preprocess[rec.session]
    # fp32: "auto" picks bf16 or fp32 by a timing, which may differ between a batch of 4 and of 1 under load
    roll = rolling_forecast(model, rec, 100, 140, step=3, batch=4, precision="fp32")
    assert roll.z.shape == (len(range(100, 140, 3)), HORIZON, rec.n_rois)
    np.testing.assert_allclose(roll.values, roll.z * state.std + state.mean, rtol=1e-5, atol=1e-5)
    single = forecast(model, rec, 103, precision="fp32")
    np.testing.assert_allclose(single.z[0], roll.z[1], rtol=1e-5, atol=1e-6)


def test_bad_t_and_unknown_session(model_and_rec):
    model, rec = model_and_rec
    with pytest.raises(PocoError, match="t must be in"):
        forecast(model, rec, CONTEXT - 2)
    with pytest.raises(PocoError, match="finetune"):
        forecast(model, replace(rec, session="other"), 100)
