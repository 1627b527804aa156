"""Behaviours that follow the authors' reference implementation (shared/POCO_SPEC.md), pinned."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_train_support import FAST, TINY_POCO, cohort, prepared

from poco_core.data.preprocess import PreprocessConfig, prepare
from poco_core.data.windows import WindowDataset
from poco_core.models import SessionSpec, build_model, dataset_mse_sum, mse_loss
from poco_core.models.registry import model_from_dict, model_to_dict
from poco_core.models.rotary import rotary_angles, rotary_periods, rotate
from poco_core.training.defaults import PATIENCE_MIN_STEPS, auto_val_every, default_train_steps
from poco_core.training.train import train_events
from poco_core.training.validation import pooled_mse

SMALL = dict(hidden=32, d_model=16, self_attn_heads=2, self_attn_head_dim=8, cross_head_dim=8, ff_mult=2)


def spec(name: str, n: int, dataset: str = "ds") -> SessionSpec:
    return SessionSpec(name, dataset, [f"{name}_u{i}" for i in range(n)])


def test_rotary_periods_for_the_defaults():
    """t_min (t_max/t_min)^(i/n), i = 0..n-1: head dim 64 -> 16 periods from 0.1 to 64.9, t_max excluded."""
    p = rotary_periods(64, 100.0).numpy()
    assert len(p) == 16 and p[0] == pytest.approx(0.1)
    assert p[-1] == pytest.approx(64.938, abs=1e-3) and p.max() < 100
    np.testing.assert_allclose(p[1:] / p[:-1], 1000 ** (1 / 16))
    legacy = rotary_periods(64, 100.0, "legacy").numpy()
    assert legacy[-1] == pytest.approx(100.0) and legacy[0] == pytest.approx(0.1)


def test_rotary_pairs_adjacent_dims_and_keeps_the_other_half():
    """The reference rotates (x[2i], x[2i+1]) by period i; the legacy pairs (x[i], x[i+n])."""
    t = torch.tensor([3.0])
    cos, sin = rotary_angles(t, 8, 10.0)  # n = 2 pairs rotate, dims 4..7 pass through
    x = torch.zeros(1, 8)
    x[0, 2] = 1.0  # first element of pair 1 (reference)
    y = rotate(x, cos, sin)
    ang = 2 * math.pi * 3.0 / rotary_periods(8, 10.0)[1].item()
    torch.testing.assert_close(y[0, :4], torch.tensor([0.0, 0.0, math.cos(ang), math.sin(ang)]))
    x = torch.randn(5, 8)
    torch.testing.assert_close(rotate(x, cos, sin)[:, 4:], x[:, 4:])
    ylegacy = rotate(torch.eye(8)[:1], *rotary_angles(t, 8, 10.0, "legacy"), "legacy")
    assert ylegacy[0, 2] != 0 and ylegacy[0, 1] == 0  # dim 0 pairs with dim n = 2


@pytest.mark.parametrize("convention", ["reference", "legacy"])
def test_rotated_dot_product_depends_on_time_differences_only(convention):
    q, k = torch.randn(64), torch.randn(64)

    def dot(tq: float, tk: float) -> float:
        rq = rotate(q, *rotary_angles(torch.tensor(tq), 64, 100.0, convention), convention)
        rk = rotate(k, *rotary_angles(torch.tensor(tk), 64, 100.0, convention), convention)
        return float(rq @ rk)

    assert dot(10.0, 4.0) == pytest.approx(dot(36.0, 30.0), rel=1e-4, abs=1e-4)
    counter = rotate(rotate(q, *rotary_angles(torch.tensor(7.0), 64, 100.0, convention), convention),
                     *(lambda c, s: (c, -s))(*rotary_angles(torch.tensor(7.0), 64, 100.0, convention)), convention)
    torch.testing.assert_close(counter, q, rtol=1e-5, atol=1e-5)


def test_new_models_use_the_reference_and_old_configs_the_legacy_function():
    model = build_model("poco", [spec("a", 5)], **SMALL)
    assert model.config.rotary == "reference" and model.config.query_dataset_embedding
    d = model_to_dict(model)
    assert model_from_dict(d).config.rotary == "reference"
    for field in ("rotary", "query_dataset_embedding"):  # a checkpoint from before the fields existed
        del d["config"][field]
    old = model_from_dict(d)
    assert old.config.rotary == "legacy" and not old.config.query_dataset_embedding
    with pytest.raises(ValueError, match="rotary"):
        build_model("poco", [spec("a", 5)], rotary="other", **SMALL)


def test_rotary_convention_changes_the_function():
    torch.manual_seed(0)
    ref = build_model("poco", [spec("a", 6)], **SMALL)
    legacy = build_model("poco", [spec("a", 6)], rotary="legacy", **SMALL)
    with torch.no_grad():
        for p in ref.head.parameters():
            p.normal_(0, 0.2)  # non-zero FiLM so the encoder reaches the output
    legacy.load_state_dict(ref.state_dict())
    ref.eval(), legacy.eval()
    x = torch.randn(2, 48, 6)
    with torch.no_grad():
        assert (ref([x], ["a"])[0] - legacy([x], ["a"])[0]).abs().max() > 1e-4


def test_dataset_embedding_reaches_the_unit_queries():
    sessions = [spec("a", 4), spec("b", 3, "other")]
    model = build_model("poco", sessions, **SMALL)
    emb = model.embeddings
    torch.testing.assert_close(emb.query("s0"), emb.unit["s0"] + emb.session["s0"] + emb.dataset["d0"])
    torch.testing.assert_close(emb.query("s1"), emb.token_bias("s1"))
    legacy = build_model("poco", sessions, query_dataset_embedding=False, **SMALL)
    torch.testing.assert_close(legacy.embeddings.query("s0"), legacy.embeddings.unit["s0"] + legacy.embeddings.session["s0"])


def test_multi_dataset_loss_sums_one_mse_per_dataset():
    """Two datasets: (a, 10 units, error 1) and (b, 1 unit, error 2): summed 1 + 4 = 5, pooled 1.27."""
    preds = [torch.ones(2, 3, 10), torch.full((2, 3, 1), 2.0), torch.ones(2, 3, 10)]
    targets = [torch.zeros_like(p) for p in preds]
    summed = dataset_mse_sum(preds, targets, ["a", "b", "a"])
    assert float(summed) == pytest.approx(1.0 + 4.0)
    assert float(mse_loss(preds, targets)) == pytest.approx((120 + 24) / 126)
    assert float(dataset_mse_sum(preds, targets, ["a"] * 3)) == pytest.approx(float(mse_loss(preds, targets)))


def test_model_loss_groups_sessions_by_their_dataset():
    sessions = [spec("a", 4), spec("b", 3, "other"), spec("c", 2)]
    model = build_model("nlinear", sessions)
    ws = [torch.randn(2, 64, n) for n in (4, 3, 2)]
    preds = model([w[:, :48] for w in ws], ["a", "b", "c"])
    want = mse_loss([preds[0], preds[2]], [ws[0][:, 48:], ws[2][:, 48:]]) + mse_loss([preds[1]], [ws[1][:, 48:]])
    torch.testing.assert_close(model.loss(ws, ["a", "b", "c"]), want)


def test_validation_criterion_is_pooled_over_sessions():
    per = {"big": {"mse": 1.0, "n_elements": 900}, "small": {"mse": 3.0, "n_elements": 100}}
    assert pooled_mse(per) == pytest.approx(1.2)  # the unweighted mean would be 2.0


def test_last_window_of_a_range_as_the_reference():
    """n frames hold (n - L - 1) // stride + 1 windows (the reference's count)."""
    values = np.arange(100, dtype=np.float32)[:, None]
    ds = WindowDataset(values, [(0, 100)], 64)
    assert len(ds) == 36 and ds.starts[-1] == 35 and ds[len(ds) - 1][-1, 0] == 98
    assert len(WindowDataset(values, [(0, 64)], 64)) == 0 and len(WindowDataset(values, [(0, 65)], 64)) == 1
    assert len(WindowDataset(values, [(0, 100)], 10, 3)) == (100 - 10 - 1) // 3 + 1


def test_pca_is_exact():
    recs = list(cohort(1, n_rois=12, n_frames=600))
    a = prepare(recs, PreprocessConfig(block_len=200, pca_k=5)).sessions[0]
    z = a.state.normalise(recs[0].traces[:], None)
    cov = np.cov(z - z.mean(0), rowvar=False)
    top = np.linalg.eigh(cov)[1][:, ::-1][:, :5].T
    np.testing.assert_allclose(np.abs(np.sum(a.state.pca_components * top, axis=1)), 1.0, atol=1e-4)


def test_default_budget_and_cadence():
    assert default_train_steps(1) == 5000 and default_train_steps(9) == 10000
    assert auto_val_every(2.0) == 1 and auto_val_every(100.0) == 25 and auto_val_every(1e6) == 100


def test_small_data_validates_often_and_stops_early(tmp_path):
    data = prepared(cohort()[:2])  # 2 sessions x 3 blocks of 120 train frames
    length = TINY_POCO["context"] + TINY_POCO["horizon"]
    n_windows = sum(len(sd.windows("train", length)) for sd in data.sessions)
    events = list(train_events(data, "nlinear", checkpoint=tmp_path / "m.pt", steps=2000, patience=2, lr=3e-2,
                               context=TINY_POCO["context"], horizon=TINY_POCO["horizon"], **FAST))
    start, done = events[0], events[-1]
    assert start["val_every"] == auto_val_every(n_windows / 8) == n_windows // 8 // 4 < 100
    vals = [e for e in events if e["type"] == "validation"]
    since = [v for v in vals if v["step"] > done["best_step"]]
    assert done["stopped_early"] and f"no lower validation MSE in {len(since)} validations" in done["stop_reason"]
    assert done["last_step"] == vals[-1]["step"] < 2000 and len(since) >= 2
    # patience counts validations, but never fewer than PATIENCE_MIN_STEPS steps after the best
    assert PATIENCE_MIN_STEPS <= vals[-1]["step"] - done["best_step"] < PATIENCE_MIN_STEPS + start["val_every"]


def test_residual_film_starts_as_the_mlp_and_reference_as_a_constant():
    """film="residual" (an option) is h * (1 + alpha) + beta: at initialisation exactly POCO's own MLP."""
    sessions = [spec("a", 5)]
    res = build_model("poco", sessions, film="residual", **SMALL)
    mlp = build_model("mlp", sessions, hidden=SMALL["hidden"])
    mlp.load_state_dict({k.replace("head.mlp.", "head."): v for k, v in res.state_dict().items() if k.startswith("head.mlp.")})
    res.eval(), mlp.eval()
    x = torch.randn(3, 48, 5)
    with torch.no_grad():
        torch.testing.assert_close(res([x], ["a"])[0], mlp([x], ["a"])[0])
        ref = build_model("poco", sessions, **SMALL).eval()
        y = ref([x], ["a"])[0]
        torch.testing.assert_close(y, y[:1, :, :1].expand_as(y))  # b_out, whatever the input
    assert ref.config.film == "reference"


def test_unit_dropout_only_while_training():
    model = build_model("poco", [spec("a", 6)], unit_dropout=0.5, film="residual", **SMALL)
    with torch.no_grad():
        for p in model.head.alpha.parameters():
            p.normal_(0, 0.3)
    x = torch.randn(2, 48, 6)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model([x], ["a"])[0], model([x], ["a"])[0])
        model.train()
        torch.manual_seed(0)
        a = model([x], ["a"])[0]
        torch.manual_seed(1)
        assert not torch.allclose(a, model([x], ["a"])[0])
