"""Preprocessing: normalisation, filters, PCA, fitted-state round trip, leakage."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from poco_core.base.errors import InvalidTraces, PocoError
from poco_core.data.filters import CausalFilter, apply_filter
from poco_core.data.preprocess import (
    PreprocessConfig,
    PreprocessState,
    fit_preprocess,
    prepare,
)
from poco_core.data.recording import Recording


def make_rec(t: int = 2000, n: int = 12, seed: int = 0, fs: float = 5.0, **kw) -> Recording:
    rng = np.random.default_rng(seed)
    traces = (100 + 10 * rng.standard_normal((t, n)) * np.arange(1, n + 1)).astype(np.float32)
    return Recording(traces=traces, fs=fs, roi_ids=[f"roi{i:04d}" for i in range(n)], **kw)


def test_zscore_stats():
    rec = make_rec()
    z = fit_preprocess(rec, PreprocessConfig()).apply(rec.traces)
    assert z.dtype == np.float32 and z.shape == rec.traces.shape
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-4)


def test_dff_then_inverse_roundtrip():
    rec = make_rec()
    state = fit_preprocess(rec, PreprocessConfig(dff=True))
    np.testing.assert_allclose(state.median, np.median(rec.traces, 0), rtol=1e-5)
    np.testing.assert_allclose(state.inverse(state.apply(rec.traces)), rec.traces, rtol=1e-4, atol=1e-3)


def test_zero_variance_and_bad_baseline_dropped_and_reported():
    rec = make_rec(n=5)
    rec.traces[:, 1] = 3.0
    rec.traces[:, 3] = -rec.traces[:, 3]  # negative baseline: no dF/F possible
    state = fit_preprocess(rec, PreprocessConfig(dff=True))
    z = state.apply(rec.traces)
    assert np.isfinite(z).all() and z.shape == (rec.n_frames, 3)
    assert state.dropped == ["roi0001", "roi0003"]
    assert state.drop_reasons == {"roi0001": "zero variance", "roi0003": "dF/F baseline (median) <= 0"}
    assert state.unit_ids == ["roi0000", "roi0002", "roi0004"]
    assert any("dropped 2 ROIs" in n for n in state.notes)


def test_all_rois_flat_is_a_clear_error():
    rec = make_rec(n=3)
    rec.traces[:] = 1.0
    with pytest.raises(InvalidTraces, match="no ROI left"):
        fit_preprocess(rec)


def test_neuropil_and_iscell():
    rec = make_rec(n=4)
    fneu = np.random.default_rng(1).standard_normal(rec.traces.shape).astype(np.float32)
    rec.extra_traces["Fneu"] = fneu
    rec.roi_info["iscell"] = np.array([1, 0, 1, 1])
    state = fit_preprocess(rec, PreprocessConfig(zscore=False, neuropil_coef=0.7, iscell_only=True))
    assert state.unit_ids == ["roi0000", "roi0002", "roi0003"]
    expected = rec.traces[:, [0, 2, 3]] - 0.7 * fneu[:, [0, 2, 3]]
    np.testing.assert_allclose(state.apply(rec.traces, fneu), expected, rtol=1e-5, atol=1e-4)
    with pytest.raises(PocoError, match="Fneu"):
        state.apply(rec.traces)


def _power_above(x: np.ndarray, fs: float, f0: float) -> float:
    spec = np.abs(np.fft.rfft(x, axis=0)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / fs)
    return float(spec[freqs > f0].sum() / spec.sum())


@pytest.mark.parametrize("kind", ["lowpass", "bandpass", "causal_lowpass"])
def test_filters_attenuate_above_cutoff(kind):
    fs = 5.0
    x = np.random.default_rng(0).standard_normal((4000, 3)).astype(np.float32)
    y = apply_filter(x, kind, fs)
    assert y.dtype == np.float32
    assert _power_above(x, fs, 0.15 * fs) > 0.5
    assert _power_above(y, fs, 0.15 * fs) < 0.02


def test_bandpass_removes_slow_drift():
    fs = 5.0
    t = np.arange(20000) / fs
    drift = np.sin(2 * np.pi * 0.001 * fs * t)[:, None].astype(np.float32)
    assert np.abs(apply_filter(drift, "bandpass", fs)[2000:-2000]).max() < 0.1
    assert np.abs(apply_filter(drift, "lowpass", fs)[2000:-2000]).max() > 0.9


def test_causal_filter_uses_no_future_samples_and_streams():
    x = np.random.default_rng(0).standard_normal((500, 4)).astype(np.float32)
    poisoned = x.copy()
    poisoned[300:] = 1e6
    a, b = apply_filter(x, "causal_lowpass", 5.0), apply_filter(poisoned, "causal_lowpass", 5.0)
    np.testing.assert_array_equal(a[:300], b[:300])
    assert not np.allclose(apply_filter(x, "lowpass", 5.0)[:300], apply_filter(poisoned, "lowpass", 5.0)[:300])
    f = CausalFilter(5.0)
    streamed = np.concatenate([f.process(x[i : i + 37]) for i in range(0, 500, 37)])
    np.testing.assert_allclose(streamed, a, atol=1e-5)


def test_pca_keeps_k_components_and_magnitudes():
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((3000, 3)) * np.array([5.0, 2.0, 1.0])
    traces = (latent @ rng.standard_normal((3, 20)) + 0.01 * rng.standard_normal((3000, 20))).astype(np.float32)
    rec = Recording(traces=traces, fs=5.0, roi_ids=[f"r{i}" for i in range(20)])
    state = fit_preprocess(rec, PreprocessConfig(pca_k=3))
    pcs = state.apply(rec.traces)
    assert pcs.shape == (3000, 3) and state.unit_ids == ["pc0", "pc1", "pc2"]
    # not whitened: component variances are the PCA eigenvalues, decreasing, summing to ~N
    var = pcs.var(0)
    assert var[0] > var[1] > var[2] and var.sum() == pytest.approx(20, rel=0.01)
    with pytest.raises(PocoError, match="PCA"):
        state.inverse(pcs)


def test_fit_on_train_does_not_see_test_period():
    config = PreprocessConfig(dff=True, filter="lowpass", pca_k=4, fit_on="train")
    rec = make_rec(t=2500)
    other = make_rec(t=2500)
    for lo, hi in [(800, 1000), (2200, 2500)]:  # both test ranges of split_blocks(2500)
        other.traces[lo:hi] = 5000 + 200 * np.random.default_rng(lo).standard_normal((hi - lo, other.n_rois))
    a, b = fit_preprocess(rec, config), fit_preprocess(other, config)
    for name in ("median", "mean", "std", "pca_mean", "pca_components"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = fit_preprocess(other, PreprocessConfig(dff=True, filter="lowpass", pca_k=4, fit_on="all"))
    assert not np.allclose(a.mean, c.mean)


@pytest.mark.parametrize("config", [PreprocessConfig(dff=True, filter="bandpass"),
                                    PreprocessConfig(filter="causal_lowpass", pca_k=5, fit_on="train")])
def test_state_roundtrip_through_torch_weights_only(config):
    rec = make_rec()
    state = fit_preprocess(rec, config)
    buf = io.BytesIO()
    torch.save({"preprocess": state.to_dict()}, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)["preprocess"]
    for d in (loaded, {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in loaded.items()}):
        again = PreprocessState.from_dict(d)
        np.testing.assert_array_equal(again.apply(rec.traces), state.apply(rec.traces))
        assert again.unit_ids == state.unit_ids and again.config == state.config


def test_config_roundtrip_and_validation():
    c = PreprocessConfig(dff=True, filter="bandpass", pca_k=8, split=[2, 1, 1])
    assert PreprocessConfig.from_dict(c.to_dict()) == c
    with pytest.raises(PocoError):
        PreprocessConfig(filter="highpass")


def test_prepare_keeps_names_and_makes_them_unique():
    recs = [make_rec(session="fish01", dataset="a"), make_rec(seed=1, session="fish01", dataset="b")]
    data = prepare(recs, PreprocessConfig())
    assert [s.session for s in data.sessions] == ["fish01", "fish01_2"]
    assert [s.dataset for s in data.sessions] == ["a", "b"]
    assert data.sessions[0].values.dtype == np.float32


def test_short_session_names_itself():
    rec = make_rec(t=200, session="tiny")
    data = prepare(rec)
    assert len(data.sessions[0].windows("train", 64)) == 120 - 64  # the reference leaves the last frame out
    with pytest.raises(InvalidTraces, match="'tiny' has no val window of 64 frames"):
        data.sessions[0].windows("val", 64)
    with pytest.raises(InvalidTraces, match="tiny"):
        prepare(rec, context=48, horizon=16)


@pytest.mark.parametrize("config", [PreprocessConfig(block_len=500), PreprocessConfig(block_len=500, fit_on="train", neuropil_coef=0.5)])
def test_large_recordings_stream_from_a_memmap(tmp_path, monkeypatch, config):
    """Above STREAM_BYTES, statistics and model values are computed block by block and the values
    live in a scratch memmap; the result equals the in-memory path."""
    import poco_core.data.preprocess as pp

    traces = np.lib.format.open_memmap(tmp_path / "t.npy", mode="w+", dtype=np.float32, shape=(1500, 20))
    traces[:] = make_rec(1500, 20).traces
    fneu = np.random.default_rng(3).standard_normal((1500, 20)).astype(np.float32)
    rec = Recording(traces=traces, fs=5.0, roi_ids=[f"r{i}" for i in range(20)], extra_traces={"Fneu": fneu})
    plain = prepare([rec], config).sessions[0]
    monkeypatch.setattr(pp, "STREAM_BYTES", 1000)
    monkeypatch.setattr(pp, "STREAM_BLOCK_BYTES", 4 * 20 * 64)  # 64-row blocks
    streamed = prepare([rec], config).sessions[0]
    assert isinstance(streamed.values, np.memmap) and not isinstance(plain.values, np.memmap)
    np.testing.assert_allclose(streamed.state.mean, plain.state.mean, rtol=1e-12)
    np.testing.assert_allclose(streamed.state.std, plain.state.std, rtol=1e-10)
    np.testing.assert_allclose(streamed.values, plain.values, rtol=1e-6, atol=1e-6)
    w = streamed.windows("train", 64)
    np.testing.assert_array_equal(w.batch([0, 5]), plain.windows("train", 64).batch([0, 5]))
