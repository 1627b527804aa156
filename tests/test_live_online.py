"""Online preprocessing and the rolling forecaster: honest (no future frames), scored against copy."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from poco_core.base.errors import PocoError
from poco_core.data.io import load_recording
from poco_core.data.recording import Recording
from poco_core.live import (
    LiveRecording,
    LiveSession,
    OnlineConfig,
    OnlinePreprocessor,
    RollingForecaster,
    replay,
)
from poco_core.models import SessionSpec, build_model

N, FS, C, P = 12, 5.0, 8, 3


def _traces(n_frames: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.cumsum(rng.normal(size=(n_frames, N)), axis=0) + 5 * np.arange(N)).astype(np.float32)


def _model(units: list[str], name: str = "nlinear") -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, [SessionSpec("live", "d", units)], context=C, horizon=P)


def _forecaster(config: OnlineConfig, name: str = "nlinear") -> RollingForecaster:
    pre = OnlinePreprocessor(N, FS, config)
    units = pre.unit_ids or [str(i) for i in range(N)]
    return RollingForecaster(_model(units, name), "live", pre, catch_up=256, shed_load=False, precision="fp32")


CONFIGS = [
    OnlineConfig(),
    OnlineConfig(filter="causal_lowpass"),
    OnlineConfig(zscore="frozen", calibration=40),
    OnlineConfig(pca_k=4, calibration=40, filter="causal_lowpass"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["running", "causal", "frozen", "pca"])
@pytest.mark.parametrize("together", [False, True], ids=["separate", "same-block"])
def test_forecast_at_t_uses_no_frame_after_t(config, together):
    """Poison every frame after t (NaN and huge values): the forecasts made at frames <= t don't change."""
    x, t = _traces(), 120
    clean = _forecaster(config)
    clean.update(x[: t + 1])
    poisoned_x = x.copy()
    poisoned_x[t + 1 :] = 1e6
    poisoned_x[t + 3, :4] = np.nan
    poisoned = _forecaster(OnlineConfig(**vars(config)))
    if together:  # the future arrives in the same block as t: per-frame statistics must hold
        poisoned.update(poisoned_x)
    else:
        poisoned.update(poisoned_x[: t + 1])
        poisoned.update(poisoned_x[t + 1 :])
    for s in range(t - 20, t + 1):
        np.testing.assert_allclose(poisoned.forecast_at(s).values, clean.forecast_at(s).values, rtol=1e-5, atol=1e-5)
    assert np.isfinite(poisoned.latest.values).all()  # the NaNs were carried over, never propagated


def test_running_statistics_are_those_of_the_frames_so_far():
    x = _traces()
    pre = OnlinePreprocessor(N, FS)
    _, mean, sd = pre.push(x[:50])
    np.testing.assert_allclose(mean[29], x[:30].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(sd[29], x[:30].std(axis=0, ddof=1), rtol=1e-4)
    _, mean, sd = pre.push(x[50:80])
    np.testing.assert_allclose(mean[-1], x[:80].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(sd[-1], x[:80].std(axis=0, ddof=1), rtol=1e-4)


def test_constant_roi_is_kept_at_zero_and_reported():
    x = _traces()
    x[:, 3] = 7.0
    fc = _forecaster(OnlineConfig())
    fc.update(x)
    assert np.isfinite(fc.latest.values).all()
    assert "1 constant ROIs kept at 0" in fc.pre.describe()


def test_description_says_what_is_in_force():
    pre = OnlinePreprocessor(N, FS, OnlineConfig(zscore="frozen", calibration=40, filter="causal_lowpass"))
    pre.push(_traces()[:10])
    text = pre.describe()
    assert "frozen from calibration frames 0..39 (calibrating: 10/40)" in text and "causal" in text and "0.5 Hz" in text
    assert "running" in OnlinePreprocessor(N, FS).describe()
    with pytest.raises(PocoError, match="zero-phase"):
        OnlineConfig(filter="lowpass")
    with pytest.raises(PocoError, match="calibration"):
        OnlineConfig(pca_k=3)


def test_copy_model_scores_zero_and_forecast_of_p_frames_ago_is_kept():
    fc = _forecaster(OnlineConfig(), name="copy")
    x = _traces()
    for i in range(0, len(x), 7):
        fc.update(x[i : i + 7])
    s = fc.score()
    assert s.n_forecasts > 100 and s.score == pytest.approx(0.0, abs=1e-6)
    now = fc.n_frames - 1
    assert fc.latest.t == now and fc.forecast_at(now - P).t == now - P


def test_model_swap_tags_later_forecasts():
    fc = _forecaster(OnlineConfig())
    x = _traces()
    fc.update(x[:100])
    fc.set_model(_model([str(i) for i in range(N)], "copy"))
    fc.update(x[100:150])
    assert fc.latest.model_version == 1 and fc.forecast_at(99).model_version == 0
    assert fc.score(since_version=1).score == pytest.approx(0.0, abs=1e-6)


def test_warm_up_and_a_swapped_in_model_are_traced_before_they_forecast():
    from poco_core.models import traced

    small = {"hidden": 16, "d_model": 16, "n_latents": 4, "cross_head_dim": 8, "self_attn_heads": 2,
             "self_attn_head_dim": 8}
    units = [str(i) for i in range(N)]
    pre = OnlinePreprocessor(N, FS, OnlineConfig())
    first = build_model("poco", [SessionSpec("live", "d", units)], context=C, horizon=P, **small)
    fc = RollingForecaster(first, "live", pre, precision="fp32")
    fc.warm_up()
    assert len(traced.traces(first)) == 1  # made on the forecasting thread before frames are due
    second = build_model("poco", [SessionSpec("live", "d", units)], context=C, horizon=P, **small)
    fc.set_model(second)  # on the adapting thread: the forecasting thread never traces
    assert len(traced.traces(second)) == 1


def test_session_without_model_still_streams_units():
    source = LiveRecording(N, FS)
    session = LiveSession(source)
    source.append(_traces()[:20])
    update = session.step()
    assert update.first == 0 and update.last == 19 and update.units.shape == (20, N) and update.forecasts == []
    assert session.step() is None


def test_replay_writes_every_frame_into_a_readable_growing_file(tmp_path):
    rec = Recording(traces=_traces(30), fs=FS, roi_ids=[f"r{i}" for i in range(N)], session="s")
    written = []
    n = replay(rec, tmp_path / "out.h5", fs=500.0, chunk=4, on_write=lambda k, t: written.append(k))
    assert n == 30 and written[-1] == 30 and written == sorted(written)
    back = load_recording(tmp_path / "out.h5")
    np.testing.assert_array_equal(np.asarray(back.traces), rec.traces)
    assert back.fs == 500.0 and list(back.roi_ids) == list(rec.roi_ids)


def test_poco_live_follows_a_file_and_reports_the_score(tmp_path, capsys):
    import argparse

    from poco_core.cli import live as live_command
    from poco_core.data.preprocess import PreprocessConfig
    from poco_core.training.checkpoint import save_checkpoint
    from poco_core.training.restore import model_payload

    rec = Recording(traces=_traces(60), fs=FS, roi_ids=[str(i) for i in range(N)])
    replay(rec, tmp_path / "rec.h5", fs=1000.0)
    model = _model([str(i) for i in range(N)])
    save_checkpoint(tmp_path / "m.pt", model_payload(model, {}, PreprocessConfig()))
    parser = argparse.ArgumentParser()
    live_command.register(parser.add_subparsers())
    args = parser.parse_args(["live", str(tmp_path / "rec.h5"), "--checkpoint", str(tmp_path / "m.pt"),
                              "--session", "live", "--seconds", "1", "--filter", "causal_lowpass"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "frame 59 · score vs copy" in out and "causal 4th-order Butterworth" in out


def test_a_stalled_writer_is_reported_and_frames_resume(monkeypatch):
    import poco_core.live.session as live_session

    source = LiveRecording(N, fs=200.0)  # 3 frame periods = 15 ms
    session = LiveSession(source)
    source.append(_traces(5))
    session.step()
    time.sleep(0.05)
    assert session.step() is None and "stalled" not in session.status()  # jitter under MIN_STALL_S (1 s)
    monkeypatch.setattr(live_session, "MIN_STALL_S", 0.01)
    assert "writer stalled" in session.status()
    source.append(_traces(3))
    assert session.step().first == 5 and "stalled" not in session.status()


def test_a_forecaster_too_slow_for_the_frame_rate_forecasts_the_newest_frames_only():
    pre = OnlinePreprocessor(N, 1e6)  # 1 µs frame period: no CPU forecasts even two windows in one
    fc = RollingForecaster(_model([str(i) for i in range(N)]), "live", pre)
    x = _traces()
    fc.update(x[:100])  # the first update forecasts the newest `catch_up` frames and measures the cost
    before = fc.skipped
    _, made = fc.update(x[100:150])
    assert [f.t for f in made] == [149] and fc.skipped - before == 49 and fc.n_frames == 150
