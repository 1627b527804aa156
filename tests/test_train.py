"""The trainer: events, seeds, resume, cancellation, short sessions, parameter-free models."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_train_support import CONTEXT, FAST, HORIZON, TINY_POCO, cohort, prepared

from poco_core.base.errors import RecordingError
from poco_core.base.events import CancelToken
from poco_core.models import build_model
from poco_core.training.checkpoint import load_checkpoint
from poco_core.training.loop import Loop, LoopOptions, LossModule
from poco_core.training.restore import load_model
from poco_core.training.train import session_specs, train, train_events


def run_losses(tmp_path, name="a.pt", **kw):
    run = train(prepared(cohort()[:2]), "poco", checkpoint=tmp_path / name, **{**TINY_POCO, **FAST, **kw})
    done = run.wait()
    return run, done


def test_events_and_best_checkpoint(tmp_path):
    events = list(train_events(prepared(cohort()[:2]), "poco", checkpoint=tmp_path / "m.pt", steps=6, val_every=3,
                               model_config=TINY_POCO, mlp_warmup=False, **FAST))  # the warm-up's events: below
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("step") == 6 and kinds.count("validation") == 2
    val = next(e for e in events if e["type"] == "validation")
    assert set(val["per_session"]) == {"fish01", "fish02"} and val["best"]
    sample = next(e for e in events if e["type"] == "forecast_sample")
    assert np.array(sample["forecast"]).shape == np.array(sample["actual"]).shape == (4, HORIZON)
    done = events[-1]
    best = min((e for e in events if e["type"] == "validation"), key=lambda e: e["val_mse"])
    assert done["best_step"] == best["step"] and not done["cancelled"]
    model = load_model(done["checkpoint"])
    assert model.poco_meta.step == best["step"] and set(model.poco_meta.preprocess) == {"fish01", "fish02"}
    assert model.poco_meta.metrics["test"]["mean"]["score"] == pytest.approx(done["test"]["score"])


def test_same_seed_same_losses(tmp_path):
    a, _ = run_losses(tmp_path, "a.pt", steps=3, val_every=3, seed=3)
    b, _ = run_losses(tmp_path, "b.pt", steps=3, val_every=3, seed=3)
    c, _ = run_losses(tmp_path, "c.pt", steps=3, val_every=3, seed=4)
    assert a.losses == b.losses and a.losses != c.losses


def test_resume_continues_identically(tmp_path):
    # one stage: a warm-up's length follows the step budget, so a 4-step run is no prefix of an 8-step
    # one (a resumed warm-up: test_mlp_warmup_resumed_in_stage2_compares_with_the_same_warmup)
    full, _ = run_losses(tmp_path, "full.pt", steps=8, val_every=4, mlp_warmup=False)
    first, _ = run_losses(tmp_path, "half.pt", steps=4, val_every=4, mlp_warmup=False)
    resumed = train(prepared(cohort()[:2]), steps=8, checkpoint=tmp_path / "resumed.pt", resume=tmp_path / "half.pt",
                    val_every=4, mlp_warmup=False, **FAST)
    done = resumed.wait()
    assert first.losses + resumed.losses == full.losses
    assert load_model(done["checkpoint"]).poco_meta.history["loss"] == full.losses[: done["best_step"]]


def test_cancel_mid_run_leaves_loadable_best_checkpoint(tmp_path):
    token = CancelToken()
    run = train(prepared(cohort()[:2]), "poco", steps=1000, val_every=500, checkpoint=tmp_path / "c.pt",
                cancel=token, **TINY_POCO, **FAST)
    for event in run.events():
        if event["type"] == "step" and event["step"] == 3:
            token.cancel()
    assert run.result["cancelled"] and len(run.losses) == 3
    # cancelled before any validation: the current weights are saved at once, with a note, no test scoring
    assert run.result["best_step"] == -1 and run.result["test"] == {} and "before any validation" in run.result["note"]
    # ... within the MLP warm-up (the default): the weights kept are POCO's MLP, and the run says so
    assert run.result["kept"] == "mlp" and run.result["kept_note"].startswith("the run ended during the MLP warm-up")
    model = run.model
    assert model.poco_meta.step == 3


def test_too_short_session_names_it():
    recs = list(cohort()[:2])
    recs[1] = replace(recs[1], traces=recs[1].traces[:60])  # 12 validation frames < 16-frame windows
    with pytest.raises(RecordingError, match="fish02.*val"):
        list(train_events(prepared(recs), "nlinear", steps=2, context=12, horizon=4, **FAST))


def test_parameter_free_model_only_evaluates(tmp_path):
    run = train(prepared(cohort()[:2]), "copy", steps=100, checkpoint=tmp_path / "copy.pt", context=12, horizon=4, **FAST)
    done = run.wait()
    assert run.losses == [] and done["test"]["score"] == pytest.approx(0.0)
    assert load_model(done["checkpoint"]).name == "copy"


def test_one_batch_per_dataset_each_step(tmp_path):
    recs = [replace(r, dataset=ds) for r, ds in zip(cohort(), ("d1", "d2", "d2"))]
    data = prepared(recs)
    net = build_model("poco", session_specs(data), **TINY_POCO)
    assert net.config.dataset_embedding
    loop = Loop(net, data, list(net.parameters()), LoopOptions(steps=1, batch_size=5, device="cpu"),
                tmp_path / "x.pt", dict)
    for _ in range(10):
        windows, sessions = loop._batch()
        by_ds = {}
        for w, s in zip(windows, sessions):
            ds = {"fish01": "d1"}.get(s, "d2")
            by_ds[ds] = by_ds.get(ds, 0) + w.shape[0]
        assert by_ds == {"d1": 5, "d2": 5}
    assert np.isfinite(loop.train_step())  # the datasets' losses summed, one backward
    assert all(net.embeddings.dataset[k].grad is not None for k in ("d0", "d1"))


def test_cond_lr_scale_slows_the_conditioning_only(tmp_path):
    """``cond_lr_scale`` (issue 16): POCO's MLP at lr, its encoder, embeddings and FiLM maps at
    lr * scale; the default is one rate, and a model without a separate MLP (NLinear) keeps one."""
    from poco_core.cli.main import build_parser
    from poco_core.training.defaults import COND_LR_SCALE

    assert LoopOptions().cond_lr_scale == COND_LR_SCALE == 1.0
    args = build_parser().parse_args(["train", "data.h5", "--out", "o.pt", "--cond-lr-scale", "0.3"])
    assert args.cond_lr_scale == 0.3
    data = prepared(cohort()[:1])
    net = build_model("poco", session_specs(data), **TINY_POCO)
    opts = LoopOptions(steps=1, device="cpu", cond_lr_scale=0.3)
    assert len(Loop(net, data, list(net.parameters()), LoopOptions(steps=1, device="cpu"), tmp_path / "a.pt",
                    dict).optimizer.param_groups) == 1
    loop = Loop(net, data, list(net.parameters()), opts, tmp_path / "x.pt", dict)
    fast, slow = loop.optimizer.param_groups
    assert slow["lr"] == pytest.approx(fast["lr"] * 0.3)
    assert {id(p) for p in fast["params"]} == {id(p) for p in net.head.mlp.parameters()}
    slow_ids = {id(p) for p in slow["params"]}
    assert {id(net.head.alpha.weight), id(net.head.beta.bias), id(net.embeddings.unit[net.session_key("fish01")])} <= slow_ids
    lin = build_model("nlinear", session_specs(data), context=CONTEXT, horizon=HORIZON)
    assert len(Loop(lin, data, list(lin.parameters()), opts, tmp_path / "y.pt", dict).optimizer.param_groups) == 1
    start = next(loop.run())
    assert start["type"] == "start" and start["cond_lr_scale"] == 0.3


def test_embedding_lr_scale_speeds_the_embeddings_only(tmp_path):
    """``embedding_lr_scale`` (issue 16, section 3): the unit and session embeddings at
    lr * cond_lr_scale * scale, the encoder and FiLM maps at lr * cond_lr_scale, the MLP at lr;
    embedding-only finetuning (no MLP trained) and finetuning's defaults keep one rate."""
    from poco_core.cli.main import build_parser
    from poco_core.training.defaults import EMBEDDING_LR_SCALE, FINETUNE_DEFAULTS, TRAIN_DEFAULTS

    assert LoopOptions().embedding_lr_scale == TRAIN_DEFAULTS["embedding_lr_scale"] == EMBEDDING_LR_SCALE
    assert FINETUNE_DEFAULTS["embedding_lr_scale"] == 1.0
    parser = build_parser()
    assert parser.parse_args(["train", "d.h5", "--out", "o.pt", "--embedding-lr-scale", "3"]).embedding_lr_scale == 3.0
    assert parser.parse_args(["finetune", "m.pt", "d.h5", "--out", "o.pt"]).embedding_lr_scale == 1.0
    data = prepared(cohort()[:1])
    net = build_model("poco", session_specs(data), **TINY_POCO)
    opts = LoopOptions(steps=1, device="cpu", cond_lr_scale=0.5, embedding_lr_scale=10.0)
    mlp, rest, emb = Loop(net, data, list(net.parameters()), opts, tmp_path / "a.pt", dict).optimizer.param_groups
    assert (rest["lr"], emb["lr"]) == (pytest.approx(mlp["lr"] * 0.5), pytest.approx(mlp["lr"] * 5.0))
    assert {id(p) for p in emb["params"]} == {id(p) for p in net.embeddings.parameters()}
    assert id(net.head.alpha.weight) in {id(p) for p in rest["params"]}
    only = list(net.embeddings.parameters())
    (group,) = Loop(net, data, only, opts, tmp_path / "b.pt", dict).optimizer.param_groups
    assert group["lr"] == opts.lr


def _conditioning(net) -> dict[str, torch.Tensor]:
    """Every parameter outside the MLP group, by name, copied."""
    mlp = {id(p) for p in net.parameter_groups()["mlp"]}
    return {k: p.detach().clone() for k, p in net.named_parameters() if id(p) not in mlp}


def _warmup_events(tmp_path, watch=None, **kw):
    data = prepared(cohort()[:2])
    net = build_model("poco", session_specs(data), **TINY_POCO)
    opts = {"steps": 24, "val_every": 4, "mlp_warmup": True, "mlp_warmup_steps": 12, "lr": 3e-3, **kw}
    events = []
    for e in train_events(data, net, checkpoint=tmp_path / "w.pt", **FAST, **opts):
        events.append(e)
        if watch:
            watch(e, net)
    return net, data, events


def test_mlp_warmup_stage1_is_the_mlp_with_the_conditioning_frozen(tmp_path):
    """Issue 16: during the warm-up POCO computes exactly an MLP with its MLP weights, and no
    conditioning parameter (encoder, embeddings, FiLM maps) moves, weight decay included."""
    data = prepared(cohort()[:2])
    net = build_model("poco", session_specs(data), **TINY_POCO)
    before = _conditioning(net)
    mlp_before = [p.detach().clone() for p in net.head.mlp.parameters()]
    run = train(data, net, checkpoint=tmp_path / "s1.pt", steps=12, val_every=4, mlp_warmup=True, mlp_warmup_steps=12,
                lr=3e-3, **FAST)
    done = run.wait()
    assert done["stages"] == [{"stage": "mlp", "step": 1}]  # the run ended within the warm-up
    assert done["kept"] == "mlp" and done["kept_note"].startswith("the run ended during the MLP warm-up")
    after = _conditioning(net)
    assert after.pop("head.alpha.bias").eq(1).all() and before.pop("head.alpha.bias").eq(0).all()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not all(torch.equal(a, b) for a, b in zip(mlp_before, net.head.mlp.parameters()))
    assert all(p.requires_grad for p in net.parameters())  # unfrozen when the run ends
    mlp = build_model("mlp", session_specs(data), context=CONTEXT, horizon=HORIZON, hidden=32)
    mlp.head.load_state_dict(net.head.mlp.state_dict())
    x = torch.randn(3, CONTEXT, 12)
    with torch.no_grad():
        (ours,), (theirs,) = net.eval()([x], ["fish01"]), mlp.eval()([x], ["fish01"])
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    # the warm-up's steps skip the encoder: the same loss and MLP gradients as the whole model
    windows = [torch.randn(5, CONTEXT + HORIZON, 12)]
    grads = []
    for mlp_only in (False, True):
        module = LossModule(net.train())
        module.mlp_only = mlp_only
        net.zero_grad()
        module(windows, ["fish02"]).backward()
        grads.append([p.grad.clone() for p in net.head.mlp.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_mlp_warmup_then_everything_best_over_both_stages(tmp_path):
    """Stage 2 starts at the warm-up's end, moves the conditioning, and the kept checkpoint is
    never worse on validation than the warm-up's best; the events say when and why stages change."""
    start = {}
    moved = []

    def watch(e, net):
        if e["type"] == "start":
            start.update(_conditioning(net))
        elif e["type"] == "validation" and e["step"] > 12:
            now = _conditioning(net)
            moved.append(any(not torch.equal(now[k], start[k]) for k in now if k != "head.alpha.bias"))

    net, _, events = _warmup_events(tmp_path, watch, mlp_warmup_se=0.0)  # any lower MSE counts (gate: below)
    first, done = events[0], events[-1]
    assert first["mlp_warmup"] and first["mlp_warmup_steps"] == 12
    stages = [e for e in events if e["type"] == "stage"]
    assert [(s["stage"], s["step"], s["reset_best"]) for s in stages] == [("mlp", 1, False), ("all", 13, False)]
    assert "cap of 12 steps" in stages[1]["note"]
    assert done["stages"][1]["stage"] == "all" and done["stages"][1]["step"] == 13
    assert moved and all(moved)
    vals = [e for e in events if e["type"] == "validation"]
    warm_best = min(v["val_mse"] for v in vals if v["step"] <= 12)
    assert done["best_val_mse"] <= warm_best
    assert done["best_val_mse"] == min(v["val_mse"] for v in vals)
    assert done["kept"] == ("all" if done["best_step"] > 12 else "mlp")


def test_mlp_warmup_ends_on_patience_and_restores_its_best(tmp_path, monkeypatch):
    """When the warm-up stops improving, stage 2 starts from its best weights, with fresh patience."""
    from poco_core.training import loop as loop_module

    monkeypatch.setattr(loop_module, "PATIENCE_MIN_STEPS", 0)
    seen = {}

    def watch(e, net):
        if e["type"] == "checkpoint" and e["step"] <= 40:
            seen["best"] = [p.detach().clone() for p in net.head.mlp.parameters()]
        elif e["type"] == "stage" and e["stage"] == "all":
            seen["restored"] = [p.detach().clone() for p in net.head.mlp.parameters()]

    _, _, events = _warmup_events(tmp_path, watch, steps=80, val_every=2, patience=2, mlp_warmup_steps=40, lr=0.3)
    switch = next(e for e in events if e["type"] == "stage" and e["stage"] == "all")
    assert switch["step"] <= 40 and "no lower validation MSE in 2 validations" in switch["note"]
    assert all(torch.equal(a, b) for a, b in zip(seen["best"], seen["restored"]))
    after = [e for e in events if e["type"] == "validation" and e["step"] >= switch["step"]]
    assert len(after) >= 2  # patience counts afresh from the switch


def test_stage2_replaces_the_warmed_up_mlp_only_when_clearly_better(tmp_path):
    """The one-standard-error rule: each stage-2 validation is compared with the warm-up's best on
    the same windows; a new best must be lower by more than `mlp_warmup_se` standard errors."""
    def stage2(events):
        return [e for e in events if e["type"] == "validation" and e["step"] > 12]

    _, _, events = _warmup_events(tmp_path, mlp_warmup_se=1e9)  # nothing can pass
    done = events[-1]
    assert done["best_step"] <= 12 and stage2(events)
    assert all("vs_mlp" in e and not e["best"] for e in stage2(events))
    assert not any(e["type"] == "checkpoint" and e["step"] > 12 for e in events)
    assert load_checkpoint(tmp_path / "w.pt")["step"] == done["best_step"]  # the warm-up's weights are kept
    assert done["kept"] == "mlp" and "beat the warmed-up MLP" in done["kept_note"]  # and the run says so
    assert "do not depend on its unit and session embeddings" in done["kept_note"]
    # what the population learned is not lost with it: stage 2's best unit rows, for the embedding analysis
    stage = load_checkpoint(tmp_path / "w.pt")["population_embeddings"]
    stage2_mse = {e["step"]: e["val_mse"] for e in stage2(events)}
    assert stage["step"] == min(stage2_mse, key=stage2_mse.get) and stage["val_mse"] == min(stage2_mse.values())
    kept = load_model(tmp_path / "w.pt")
    assert kept.ignores_conditioning() and set(stage["unit"]) == {s.session for s in kept.sessions}
    for s in kept.sessions:  # the kept MLP's rows are their initial draw; stage 2 moved them
        assert torch.equal(kept.unit_embeddings(s.session), kept.initial_unit_embeddings(s.session))
        assert not torch.equal(stage["unit"][s.session], kept.unit_embeddings(s.session))
    assert f"learned (step {stage['step']}) are kept in the checkpoint" in done["kept_note"]
    _, _, events = _warmup_events(tmp_path, mlp_warmup_se=1.0, lr=1e-2)
    gates = [e["vs_mlp"] for e in stage2(events)]
    assert all(math.isfinite(g["se"]) and g["needed"] == g["se"] for g in gates)
    for e in stage2(events):
        if e["best"]:
            assert e["vs_mlp"]["gain"] > e["vs_mlp"]["needed"]
    ungated = [e for e in _warmup_events(tmp_path, mlp_warmup_se=0.0)[2] if e["type"] == "validation"]
    assert not any("vs_mlp" in e for e in ungated)


def test_paired_improvement_blocks_and_weights():
    from poco_core.training.validation import paired_improvement

    rng = np.random.default_rng(0)
    base = {"a": rng.random(64) + 1, "b": rng.random(32) + 1}
    same = paired_improvement(base, base, {"a": 10, "b": 5}, 16)
    assert same == (0.0, 0.0)
    shifted = {"a": base["a"] - 0.1, "b": base["b"] - 0.4}  # weights: 64 x 10 against 32 x 5 elements
    gain, se = paired_improvement(base, shifted, {"a": 10, "b": 5}, 16)
    assert gain == pytest.approx((0.1 * 640 + 0.4 * 160) / 800) and se > 0
    # differences shared by 16 neighbouring windows (overlapping windows err together): blocks of
    # one window would count 96 independent values where there are 6, and understate the error
    slow = {k: base[k] - np.repeat(rng.normal(0, 1, len(v) // 16), 16) for k, v in base.items()}
    wide_pair = paired_improvement(base, slow, {"a": 1, "b": 1}, 16)
    wide = wide_pair[1]
    narrow = paired_improvement(base, slow, {"a": 1, "b": 1}, 1)[1]
    assert wide > 2 * narrow > 0
    assert paired_improvement({"a": base["a"][:10]}, {"a": base["a"][:10] - 1}, {"a": 1}, 16) == (1.0, math.inf)
    # one block size per session
    assert paired_improvement(base, slow, {"a": 1, "b": 1}, {"a": 16, "b": 16}) == wide_pair
    assert paired_improvement(base, slow, {"a": 1, "b": 1}, {"a": 16, "b": 1})[1] < wide


def test_blocks_follow_the_spacing_of_the_windows_validated():
    """Overlapping targets make a block; windows capped by `max_val_windows` lie far apart and are
    independent, so with 16 of 1,600 windows a block is one window, not a horizon's worth (which
    made each session a single block and the standard error meaningless)."""
    from poco_core.training.validation import windows_per_horizon

    assert windows_per_horizon(1600, 1600, horizon=16, stride=1) == 16  # every window: one horizon of them
    assert windows_per_horizon(1600, 1600, horizon=16, stride=4) == 4
    assert windows_per_horizon(1600, 16, horizon=16, stride=1) == 1
    assert windows_per_horizon(201, 101, horizon=16, stride=1) == 8  # every second window


@pytest.mark.parametrize("model", ["mlp", "nlinear"])
def test_mlp_warmup_is_a_no_op_without_film(tmp_path, model):
    events = list(train_events(prepared(cohort()[:2]), model, checkpoint=tmp_path / "m.pt", steps=4, val_every=2,
                               context=CONTEXT, horizon=HORIZON, mlp_warmup=True, **FAST))
    assert not events[0]["mlp_warmup"] and not any(e["type"] == "stage" for e in events)
    assert events[-1]["stages"] == []


def test_train_stride_thins_the_epoch_and_its_validation_cadence(tmp_path):
    from poco_core.cli.common import loop_kwargs
    from poco_core.cli.main import build_parser

    data = prepared(cohort())
    net = build_model("poco", session_specs(data), **TINY_POCO)

    def loop(stride: int) -> Loop:
        return Loop(net, data, list(net.parameters()), LoopOptions(steps=50, batch_size=4, device="cpu",
                                                                   train_stride=stride), tmp_path / "x.pt", dict)

    length = CONTEXT + HORIZON
    every, thin = loop(1), loop(length)
    for (_, _, dense), (_, sampler, sparse) in zip(every.samplers, thin.samplers):
        for d, w in zip(dense, sparse):  # every length-th window of each range, no other
            assert w.stride == length and 0 < len(w) <= len(d) // length + len(w.ranges)
            assert set(w.starts) <= set(d.starts) and all((s - a) % length == 0 for s in w.starts
                                                          for a, b in w.ranges if a <= s < b)
        assert sampler.counts.sum() == sum(len(w) for w in sparse)
    assert thin.opts.val_every <= every.opts.val_every  # the cadence follows the (shorter) epoch
    args = build_parser().parse_args(["train", "data.h5", "--out", "o.pt", "--train-stride", "64"])
    assert loop_kwargs(args)["train_stride"] == 64 and LoopOptions().train_stride == 1


def test_mlp_warmup_cli_flags():
    from poco_core.cli.main import build_parser
    from poco_core.training.defaults import MLP_WARMUP

    parse = build_parser().parse_args
    args = parse(["train", "data.h5", "--out", "o.pt", "--mlp-warmup", "--mlp-warmup-steps", "300"])
    assert args.mlp_warmup and args.mlp_warmup_steps == 300
    assert parse(["train", "data.h5", "--out", "o.pt"]).mlp_warmup == MLP_WARMUP == LoopOptions().mlp_warmup
    assert not parse(["train", "data.h5", "--out", "o.pt", "--no-mlp-warmup"]).mlp_warmup
    assert parse(["train", "data.h5", "--out", "o.pt"]).mlp_warmup_se == LoopOptions().mlp_warmup_se
    assert parse(["train", "data.h5", "--out", "o.pt", "--mlp-warmup-se", "0"]).mlp_warmup_se == 0
    with pytest.raises(SystemExit):  # finetuning never warms up: the flag is training's only
        parse(["finetune", "m.pt", "data.h5", "--out", "f.pt", "--mlp-warmup"])


def test_mlp_warmup_resumed_in_stage2_compares_with_the_same_warmup(tmp_path):
    """The warm-up's per-window errors travel in the checkpoint's history, so a run resumed in
    stage 2 gates its candidates exactly as the uninterrupted run does."""
    opts = dict(val_every=4, mlp_warmup=True, mlp_warmup_steps=12, lr=3e-3, **TINY_POCO, **FAST)
    data = prepared(cohort()[:2])
    full = train(data, "poco", steps=24, checkpoint=tmp_path / "full.pt", **opts)
    full.wait()
    half = train(data, "poco", steps=16, checkpoint=tmp_path / "half.pt", **opts)
    half.wait()
    resumed = train(data, steps=24, checkpoint=tmp_path / "r.pt", resume=tmp_path / "half.pt", **opts)
    resumed.wait()
    gates = lambda run: {v["step"]: v["vs_mlp"] for v in run.validations if "vs_mlp" in v}  # noqa: E731
    after = {k: v for k, v in gates(full).items() if k > 16}
    assert after and all(gates(resumed)[k]["gain"] == pytest.approx(v["gain"]) for k, v in after.items())


def test_mlp_warmup_resumes_within_the_warmup(tmp_path):
    """A run stopped during the warm-up resumes in it (the checkpoint's history names the stage)."""
    opts = dict(val_every=4, mlp_warmup=True, mlp_warmup_steps=12, lr=3e-3, **TINY_POCO, **FAST)
    data = prepared(cohort()[:2])
    full = train(data, "poco", steps=20, checkpoint=tmp_path / "full.pt", **opts)
    full.wait()
    half = train(data, "poco", steps=8, checkpoint=tmp_path / "half.pt", **opts)
    assert half.wait()["best_step"] == 8
    resumed = train(data, steps=20, checkpoint=tmp_path / "r.pt", resume=tmp_path / "half.pt", **opts)
    done = resumed.wait()
    assert half.losses + resumed.losses == full.losses
    assert done["stages"] == full.result["stages"]
