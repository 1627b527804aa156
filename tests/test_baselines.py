"""Honest scores (issue 14): the mean and smoothed-copy baselines beside copy, and a diagnosis
when the score against copy misleads -- on real tool output."""
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from poco_core.analysis.evaluate import evaluate, results_table
from poco_core.data.io import load_recording
from poco_core.data.preprocess import PreprocessConfig, prepare
from poco_core.models import build_model
from poco_core.training.train import session_specs
from poco_core.training.validation import SMOOTH_FRAMES, ErrorAccumulator, session_metrics

DATA = Path(__file__).parent / "data"


def test_baselines_are_exact():
    g = torch.Generator().manual_seed(0)
    ctx, target = torch.randn(5, 12, 3, generator=g), torch.randn(5, 4, 3, generator=g)
    pred = target + 0.3 * torch.randn(5, 4, 3, generator=g)
    m = session_metrics(pred, target, ctx)
    mse = ((pred - target) ** 2).mean().item()
    mean_mse = (target ** 2).mean().item()  # the mean baseline predicts 0 in z-units
    smooth_mse = ((ctx[:, -SMOOTH_FRAMES:].mean(1, keepdim=True) - target) ** 2).mean().item()
    assert m["mean_mse"] == pytest.approx(mean_mse) and m["smooth_mse"] == pytest.approx(smooth_mse)
    assert m["mean_score"] == pytest.approx(1 - mse / mean_mse) and m["smooth_score"] == pytest.approx(1 - mse / smooth_mse)
    acc = ErrorAccumulator(4, unit_mean=torch.tensor([1.0, 0.0, -1.0]))
    acc.update(pred, target, ctx[:, -1])
    assert acc.metrics()["mean_mse"] == pytest.approx(((torch.tensor([1.0, 0.0, -1.0]) - target) ** 2).mean().item())


def copy_eval(rec, block_len, context=16, horizon=4):
    data = prepare(rec, PreprocessConfig(block_len=block_len, fit_on="train"))
    return evaluate(build_model("copy", session_specs(data), context=context, horizon=horizon), data)


def test_mean_baseline_is_the_training_mean_and_noisy_data_is_diagnosed():
    """Real Triplett zebrafish traces: copy is worse than predicting the mean; the diagnosis says so."""
    r = copy_eval(load_recording(DATA / "triplett_zf_20170215-f3"), 100, context=15)
    m = r.mean
    assert m["copy_mse"] > m["mean_mse"] and m["smooth_mse"] < m["copy_mse"]
    assert "worse than predicting the mean" in m["diagnosis"] and "--target-fs" in m["diagnosis"]
    rows = {row["model"]: row for row in results_table([r]) if row["dataset"] == "(all)"}
    assert set(rows) == {"copy", "mean", "smoothed copy"}  # the copy model is its own baseline row
    assert rows["mean"]["mse"] == pytest.approx(m["mean_mse"]) and rows["mean"]["mean_score"] == pytest.approx(0.0)
    assert rows["smoothed copy"]["smooth_score"] == pytest.approx(0.0)
    assert rows["copy"]["score"] == pytest.approx(0.0) and rows["mean"]["score"] > 0


def write_caiman_c(path: Path, c: np.ndarray, fr: float) -> None:
    """A CaImAn result laid out as cnm.save writes it (see test_io_caiman), with the given C (K, T)."""
    k, t = c.shape
    a = sp.csc_matrix(np.eye(16 * 16, k))
    with h5py.File(path, "w") as f:
        f["dims"] = np.array([16, 16])
        est = f.create_group("estimates")
        for part in ("data", "indptr", "indices"):
            est[f"A/{part}"] = getattr(a, part)
        est["A/shape"] = a.shape
        est["C"], est["S"], est["YrA"] = c, np.zeros_like(c), np.zeros_like(c)
        est["F_dff"] = "NoneType"
        f.create_group("params/data")["fr"] = fr


def test_denoised_series_is_diagnosed(tmp_path):
    """CaImAn's C is a denoised fit; the suite2p fixture's true (noise-free) traces stand in for it."""
    truth = np.load(DATA / "suite2p_sim/ground_truth.npz")["traces"]
    write_caiman_c(tmp_path / "cnm.hdf5", truth.T.astype(np.float64), 30.0)
    m = copy_eval(load_recording(tmp_path / "cnm.hdf5"), 110).mean
    assert m["copy_mse"] < 0.35 * m["mean_mse"] and m["smooth_mse"] > m["copy_mse"]
    assert "already denoised" in m["diagnosis"] and "F_dff" in m["diagnosis"]


def test_real_suite2p_training_reports_baselines_in_events(tmp_path):
    from test_train_support import FAST, TINY_POCO

    from poco_core.training.train import train

    rec = load_recording(DATA / "suite2p_sim/suite2p/plane0")
    run = train(prepare(rec, PreprocessConfig(block_len=110)), "poco", steps=4, val_every=2, checkpoint=tmp_path / "m.pt",
                **{**TINY_POCO, "context": 16, "horizon": 4}, **FAST)
    done = run.wait()
    keys = {"mean_mse", "mean_score", "smooth_mse", "smooth_score", "diagnosis"}
    assert keys <= set(done["test"]) and keys <= set(run.validations[-1]["mean"])
    assert keys <= set(run.validations[-1]["per_session"]["suite2p_sim"])
    assert done["test"]["mean_score"] == pytest.approx(1 - done["test"]["mse"] / done["test"]["mean_mse"])
