"""Cross-validated choice between POCO and its own MLP (`poco train --cv-folds K`, issue 16)."""
from __future__ import annotations

import torch
import pytest
from test_train_support import FAST, TINY_POCO, cohort, prepared

from poco_core.analysis.embedding import analyze_model
from poco_core.base.errors import PocoError
from poco_core.base.events import CancelToken
from poco_core.data.windows import split_blocks
from poco_core.models import build_model
from poco_core.training import crossval as crossval_module
from poco_core.training.checkpoint import load_checkpoint
from poco_core.training.crossval import choose, crossval, crossval_events, fold_data, fold_ranges, run_order
from poco_core.training.jobs import JobSpec
from poco_core.training.restore import load_model
from poco_core.training.train import session_specs, train_events

RUN = dict(steps=12, val_every=4, model_config=TINY_POCO, **FAST)


def frames(ranges: list[tuple[int, int]]) -> list[int]:
    return sorted(t for a, b in ranges for t in range(a, b))


def test_folds_split_the_train_and_val_frames_and_leave_test_alone() -> None:
    """Every train + val frame validates in exactly one fold and trains in the others; the test
    frames are never in a fold; the last fold is the default split."""
    split = split_blocks(2345, 1000)
    seen = frames(split["train"] + split["val"])
    folds = [fold_ranges(split, k, 4) for k in range(4)]
    for f in folds:
        assert f["test"] == split["test"]
        assert frames(f["train"] + f["val"]) == seen  # nothing lost, nothing counted twice
        assert not set(frames(f["train"])) & set(frames(f["val"]))
    assert frames([r for f in folds for r in f["val"]]) == seen  # each frame validates once
    assert folds[3] == split
    with pytest.raises(PocoError, match="validation frames in every block"):
        fold_ranges(split_blocks(2345, 1000, (4, 0, 1)), 0, 4)


def test_fold_data_shares_the_values() -> None:
    data = prepared(cohort()[:2])
    fold = fold_data(data, 0, 3)
    assert fold_data(data, 2, 3) is data
    assert all(a.values is b.values and a.ranges != b.ranges for a, b in zip(fold.sessions, data.sessions))


def test_choice_is_the_lower_mean_over_the_folds_both_completed() -> None:
    assert choose({"mlp": {}, "poco": {}}) is None
    assert choose({"mlp": {3: 1.0, 0: 0.5}, "poco": {3: 0.9}})[::2] == ("poco", [3])  # fold 0 lacks POCO
    pick, means, folds = choose({"mlp": {0: 1.0, 1: 0.6}, "poco": {0: 0.7, 1: 1.0}})  # POCO wins fold 0 only
    assert (pick, folds) == ("mlp", [0, 1]) and means == pytest.approx({"mlp": 0.8, "poco": 0.85})
    assert choose({"mlp": {0: 1.0}, "poco": {0: 1.0}})[0] == "mlp"  # a tie keeps the simpler model
    assert run_order(3) == [(2, "mlp"), (2, "poco"), (0, "mlp"), (0, "poco"), (1, "mlp"), (1, "poco")]


def test_mlp_only_trains_the_mlp_and_never_the_conditioning(tmp_path) -> None:
    data = prepared(cohort()[:2])
    net = build_model("poco", session_specs(data), **TINY_POCO)
    mlp = {id(p) for p in net.parameter_groups()["mlp"]}
    net.start_as_mlp()  # what the loop sets first (alpha = 1, beta = 0); the same again there
    before = {k: p.detach().clone() for k, p in net.named_parameters()}
    events = list(train_events(data, net, checkpoint=tmp_path / "m.pt", mlp_only=True, mlp_warmup=False, **{
        **RUN, "model_config": None}))
    assert [e["stage"] for e in events if e["type"] == "stage"] == ["mlp"]  # no second stage
    after = dict(net.named_parameters())
    for name, p in after.items():
        assert (not torch.equal(before[name], p.detach())) is (id(p) in mlp), name
    assert events[-1]["kept"] == "mlp" and "trained only the MLP" in events[-1]["kept_note"]
    with pytest.raises(PocoError, match="no FiLM conditioning"):
        list(train_events(data, "nlinear", checkpoint=tmp_path / "n.pt", mlp_only=True, context=12, horizon=4,
                          **{**RUN, "model_config": None}))


def test_crossval_runs_every_fold_and_keeps_the_choice(tmp_path) -> None:
    out = tmp_path / "out" / "m.pt"
    events = list(crossval_events(prepared(cohort()[:2]), "poco", folds=3, checkpoint=out, decisive_se=None, **RUN))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("start") == 1
    assert events[0]["total_steps"] == 6 * 12 and kinds.count("stage") == kinds.count("crossval_run") == 6
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert steps == list(range(1, 73))  # counted on across the runs, for one progress bar
    stages = [e for e in events if e["type"] == "stage"]
    assert [e["step"] for e in stages] == [1, 13, 25, 37, 49, 61] and all(e["reset_best"] for e in stages)
    runs = [e for e in events if e["type"] == "crossval_run"]
    assert [(e["fold"], e["candidate"]) for e in runs] == run_order(3)
    # only the default split's runs, one of which is kept, are scored on the test split
    assert all(bool(e["test"]) is (e["fold"] == 2) for e in runs)
    # the choice is the lower mean of the runs' best validation MSEs
    mse = {c: {e["fold"]: e["best_val_mse"] for e in runs if e["candidate"] == c} for c in ("mlp", "poco")}
    pick = min(("mlp", "poco"), key=lambda c: sum(mse[c].values()))
    done = events[-1]
    assert done["crossval"]["choice"] == pick and done["crossval"]["complete"] and not done["cancelled"]
    split = done["crossval"]["default_split"]  # measured even where it may not settle the choice
    assert split["gain"] == pytest.approx(mse["mlp"][2] - mse["poco"][2], rel=1e-4) and split["se"] > 0
    assert not done["crossval"]["settled_on_default_split"]
    assert done["kept"] == ("mlp" if pick == "mlp" else "all") and "cross-validation chose" in done["kept_note"]
    default_run = next(e for e in runs if e["fold"] == 2 and e["candidate"] == pick)
    assert done["best_val_mse"] == default_run["best_val_mse"] and done["test"] == default_run["test"]
    kept_validation = next(e for e in events if e["type"] == "validation" and e["step"] == done["best_event_step"])
    assert kept_validation["val_mse"] == done["best_val_mse"] and kept_validation["val_score"] == done["best_val_score"]
    # the checkpoint at the user's path is the choice's default-split run, self-describing
    ckpt = load_checkpoint(out)
    assert ckpt["crossval"] == done["crossval"] and ckpt["loop"]["mlp_only"] is (pick == "mlp")
    # with the MLP chosen, what POCO learned on the default split goes with it, for the embedding analysis
    assert ("population_embeddings" in ckpt) is (pick == "mlp")
    if pick == "mlp":
        poco_run = next(e for e in runs if e["fold"] == 2 and e["candidate"] == "poco")
        assert ckpt["population_embeddings"]["step"] == poco_run["best_step"]
        assert "learned on the default split are kept in the checkpoint" in done["kept_note"]
    assert ckpt["best_val_mse"] == pytest.approx(done["best_val_mse"])
    assert load_model(out).poco_meta.metrics["test"]["mean"]["score"] == pytest.approx(done["test"]["score"])
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.pt"]  # the runs' work folder is gone


def test_a_clear_default_split_settles_the_choice_without_the_other_folds(tmp_path) -> None:
    """With the two default-split runs further apart than `decisive_se` standard errors of their paired
    difference, the other folds are not run; the difference is that of their best validation MSEs."""
    out = tmp_path / "m.pt"
    events = list(crossval_events(prepared(cohort()[:2]), "poco", folds=3, checkpoint=out, decisive_se=0.0, **RUN))
    runs = [e for e in events if e["type"] == "crossval_run"]
    assert [(e["fold"], e["candidate"]) for e in runs] == run_order(3)[:2]
    settled = next(e for e in events if e["type"] == "crossval_settled")
    mse = {e["candidate"]: e["best_val_mse"] for e in runs}
    assert settled["gain"] == pytest.approx(mse["mlp"] - mse["poco"], rel=1e-4) and settled["se"] > 0
    assert settled["candidate"] == min(mse, key=mse.get) and "folds are not run" in settled["note"]
    start = next(e for e in events if e["type"] == "start")  # the budget shrinks from 3 x 2 runs to the 2 made
    assert start["total_steps"] == 3 * settled["total_steps"] == 3 * 2 * RUN["steps"]
    assert max(e["step"] for e in events if e["type"] == "step") <= settled["total_steps"]
    done = events[-1]
    assert done["crossval"]["choice"] == settled["candidate"] and done["crossval"]["settled_on_default_split"]
    assert not done["crossval"]["complete"] and "default split alone" in done["stop_reason"]
    assert "on the default split alone" in done["kept_note"] and done["test"]  # the kept run was scored on test
    assert load_checkpoint(out)["crossval"] == done["crossval"] and sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_cancelled_crossval_keeps_the_choice_so_far(tmp_path) -> None:
    token = CancelToken()
    run = crossval(prepared(cohort()[:2]), "poco", folds=3, checkpoint=tmp_path / "m.pt", cancel=token,
                   decisive_se=None, **RUN)
    for e in run.events():
        if e["type"] == "stage" and e["crossval"]["run"] == 4:  # fold 1's POCO: the default split is done
            token.cancel()
    done = run.result
    assert done["cancelled"] and "kept the choice so far" in done["note"]
    assert done["crossval"]["folds_compared"] == [2] and not done["crossval"]["complete"]
    assert load_checkpoint(tmp_path / "m.pt")["crossval"]["choice"] == done["crossval"]["choice"]
    assert run.model.name == "poco" and sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_crossval_cancelled_in_its_first_run_keeps_that_run(tmp_path) -> None:
    token = CancelToken()
    run = crossval(prepared(cohort()[:2]), "poco", folds=3, checkpoint=tmp_path / "m.pt", cancel=token,
                   **{**RUN, "steps": 1000, "val_every": 500})
    for e in run.events():
        if e["type"] == "step" and e["step"] == 3:
            token.cancel()
    assert run.result["cancelled"] and "before any validation" in run.result["note"]
    assert run.model.poco_meta.step == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_crossval_refuses_what_it_cannot_do(tmp_path) -> None:
    data = prepared(cohort()[:2])
    with pytest.raises(PocoError, match="at least 2 folds"):
        list(crossval_events(data, "poco", folds=1, checkpoint=tmp_path / "a.pt", **RUN))
    with pytest.raises(PocoError, match="no FiLM conditioning"):
        list(crossval_events(data, "mlp", folds=2, checkpoint=tmp_path / "b.pt", context=12, horizon=4,
                             **{**RUN, "model_config": None}))
    earlier = tmp_path / "c.pt"
    earlier.write_bytes(b"an earlier model")
    with pytest.raises(PocoError, match="session"):  # a fold too short for one window names the session
        list(crossval_events(data, "poco", folds=30, checkpoint=earlier, **RUN))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"] and earlier.read_bytes() == b"an earlier model"
    with pytest.raises(ValueError, match="cv_folds"):
        JobSpec(kind="train", recordings=[], checkpoint="x.pt", cv_folds=1)


def test_the_mlp_chosen_keeps_the_unit_rows_poco_learned(tmp_path, monkeypatch) -> None:
    """The MLP's forecasts ignore the unit embeddings; the POCO run of the default split learned them, and
    the checkpoint keeps them for `poco embed` (as a warm-up that kept the MLP does)."""
    real = crossval_module.choose
    monkeypatch.setattr(crossval_module, "choose", lambda v: (lambda f: f and ("mlp", *f[1:]))(real(v)))
    out = tmp_path / "m.pt"
    events = list(crossval_events(prepared(cohort()[:2]), "poco", folds=2, checkpoint=out, decisive_se=None, **RUN))
    poco_run = next(e for e in events if e["type"] == "crossval_run" and e["fold"] == 1 and e["candidate"] == "poco")
    stage = load_checkpoint(out)["population_embeddings"]
    assert (stage["step"], stage["val_mse"]) == (poco_run["best_step"], poco_run["best_val_mse"])
    result = analyze_model(load_model(out))
    assert result.source == "population stage" and result.rows == "learned" and "learned on the default split" in events[-1]["kept_note"]
