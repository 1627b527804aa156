"""Finetuning: fresh embeddings for the new session, only the chosen parameters move, and it helps."""
from __future__ import annotations

import pytest
import torch
from test_train_support import FAST, TINY_POCO, cohort, prepared

from poco_core.analysis.evaluate import evaluate
from poco_core.base.errors import PocoError
from poco_core.training.finetune import finetune, finetune_events
from poco_core.training.restore import load_model
from poco_core.training.train import train


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    path = tmp_path_factory.mktemp("ft") / "pre.pt"
    # one stage: a population whose embeddings matter (the default warm-up may keep the MLP)
    train(prepared(cohort()[:2]), "poco", steps=60, val_every=30, lr=5e-3, checkpoint=path, mlp_warmup=False,
          **TINY_POCO, **FAST).wait()
    return path


def changed(before: dict, model) -> set[str]:
    after = model.state_dict()
    return {k for k, v in before.items() if not torch.equal(v, after[k])}


def test_embedding_mode_trains_only_the_new_sessions_embeddings(pretrained, tmp_path):
    model = load_model(pretrained)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    events = list(finetune_events(model, prepared(cohort()[2:]), steps=4, val_every=2, checkpoint=tmp_path / "ft.pt", **FAST))
    assert [e["type"] for e in events].count("validation") == 2 and events[-1]["type"] == "done"
    new = {k for k in model.state_dict() if k not in before}
    assert new and all(".s2" in k for k in new)  # unit and session rows of the third session
    assert changed(before, model) == set()  # nothing that existed before moved
    drawn = {k for k in new if ".initial." in k}  # the new rows' initial draw, kept (not trained) beside them
    assert drawn == {"embeddings.initial.s2"} and {n for n, p in model.named_parameters() if p.requires_grad} == new - drawn
    saved = load_model(tmp_path / "ft.pt")
    assert set(saved.poco_meta.preprocess) == {"fish01", "fish02", "fish03"}
    assert [s.session for s in saved.sessions] == ["fish01", "fish02", "fish03"]


def test_embedding_finetuning_of_a_model_kept_at_its_mlp_warns(pretrained, tmp_path):
    """A model kept at its MLP warm-up has constant FiLM maps: its forecasts ignore the embeddings,
    so embedding-only finetuning (and live adaptation) would silently change nothing."""
    from poco_core.training.finetune import EMBEDDINGS_IGNORED

    warm = tmp_path / "warm.pt"
    train(prepared(cohort()[:2]), "poco", steps=8, val_every=4, mlp_warmup=True, mlp_warmup_steps=8, checkpoint=warm,
          **TINY_POCO, **FAST).wait()
    for path, flagged in ((warm, True), (pretrained, False)):
        events = list(finetune_events(path, prepared(cohort()[2:]), steps=0, checkpoint=tmp_path / "ft.pt", **FAST))
        warnings = [e["message"] for e in events if e["type"] == "warning"]
        assert (EMBEDDINGS_IGNORED in warnings) is flagged
    events = finetune_events(warm, prepared(cohort()[2:]), mode="all", steps=0, checkpoint=tmp_path / "all.pt", **FAST)
    assert EMBEDDINGS_IGNORED not in [e.get("message") for e in events]


@pytest.mark.parametrize("mode, moved", [("embeddings+mlp", {"head.mlp"}), ("all", {"head.mlp", "encoder"})])
def test_wider_modes_train_more(pretrained, tmp_path, mode, moved):
    model = load_model(pretrained)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    finetune(model, prepared(cohort()[2:]), mode=mode, steps=2, val_every=2, checkpoint=tmp_path / "m.pt", **FAST).wait()
    moved_keys = changed(before, model)
    for prefix in moved:
        assert any(k.startswith(prefix) for k in moved_keys), prefix
    if mode != "all":
        assert not any(k.startswith(("encoder", "embeddings")) for k in moved_keys)


def test_finetune_improves_on_a_held_out_session(pretrained, tmp_path):
    data = prepared(cohort()[2:])
    run = finetune(pretrained, data, steps=40, val_every=40, lr=3e-2, checkpoint=tmp_path / "ft.pt", **FAST)
    done = run.wait()
    fresh = load_model(pretrained)
    finetune(fresh, data, steps=0, checkpoint=tmp_path / "zero.pt", **FAST).wait()  # embeddings added, untrained
    baseline = evaluate(fresh, data).score
    assert done["test"]["score"] > baseline + 0.01


def test_same_session_name_with_other_units_is_refused(pretrained, tmp_path):
    from dataclasses import replace

    rec = replace(cohort()[2], session="fish01")
    rec = rec.select_rois(list(range(6)))
    with pytest.raises(PocoError, match="distinct session name"):
        list(finetune_events(pretrained, prepared([rec]), steps=1, checkpoint=tmp_path / "x.pt", **FAST))
