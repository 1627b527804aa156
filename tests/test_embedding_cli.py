"""`poco embed`: a checkpoint and its recordings in, CSV / HDF5 tables and a JSON summary out."""
from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pytest
import torch

from poco_core.analysis.embedding import NO_INITIAL_ROWS, UNUSED_EMBEDDINGS, analyze_model
from poco_core.cli.main import main
from poco_core.data.io import load_recording, save_recording
from poco_core.data.simulate import simulate_cohort
from poco_core.training.checkpoint import load_checkpoint, save_checkpoint
from poco_core.training.restore import load_model
from poco_core.training.train import train

TINY = dict(context=16, horizon=4, hidden=16, d_model=16, self_attn_heads=2, self_attn_head_dim=8, cross_head_dim=8)


@pytest.fixture(scope="module")
def checkpoint_and_data(tmp_path_factory):
    """A barely trained POCO (2 steps: the CLI plumbing, not the science) and its two recordings."""
    folder = tmp_path_factory.mktemp("embed")
    recs = simulate_cohort(2, 40, 300, seed=3)
    paths = [save_recording(rec, folder / f"{rec.session}.h5") for rec in recs]
    run = train(recs, "poco", steps=2, device="cpu", checkpoint=folder / "poco.pt", batch_size=4, val_every=2,
                mlp_warmup=False, **TINY)  # one stage: the FiLM maps train from the first step
    return run.wait()["checkpoint"], paths


def test_embed_writes_csv_and_similarity_matrix(checkpoint_and_data, tmp_path, capsys):
    ckpt, paths = checkpoint_and_data
    out = tmp_path / "embed.csv"
    assert main(["embed", str(ckpt), *map(str, paths), "--out", str(out), "--clusters", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_units"] == 80 and summary["n_clusters"] == 3 and len(summary["sessions"]) == 2
    assert set(summary["recovery"]) >= {"ari", "ari_shuffled", "accuracy", "accuracy_shuffled", "chance"}
    with open(out) as fh:
        header = next(csv.reader(fh))
    assert header[:6] == ["session", "roi_id", "region", "umap_x", "umap_y", "cluster"]
    assert any(h.startswith("similarity_") for h in header) and header[-1] == "emb_15"
    assert summary["files"] == [str(out), str(tmp_path / "embed_region_similarity.csv")]


def test_embed_writes_hdf5_with_hdbscan(checkpoint_and_data, tmp_path, capsys):
    ckpt, paths = checkpoint_and_data
    out = tmp_path / "embed.h5"
    assert main(["embed", str(ckpt), *map(str, paths), "--out", str(out), "--method", "hdbscan", "--metric", "euclidean"]) == 0
    assert "ARI clusters vs regions" in capsys.readouterr().out
    with h5py.File(out) as f:
        assert {"session", "roi_id", "region", "umap_x", "umap_y", "cluster", "embedding", "similarity"} <= set(f["rois"])
        assert json.loads(f.attrs["summary"])["method"] == "hdbscan"


def test_embed_says_when_the_forecasts_ignore_the_embeddings(checkpoint_and_data, tmp_path, capsys):
    """A POCO kept at its MLP warm-up (FiLM maps constant) never used its unit embeddings: the
    summary says so, and says nothing of the kind for a model whose conditioning trained."""
    ckpt, paths = checkpoint_and_data
    warm = tmp_path / "warm.pt"
    sets = [a for k, v in TINY.items() if k not in ("context", "horizon") for a in ("--set", f"{k}={v}")]
    assert main(["train", *map(str, paths), "--out", str(warm), "--steps", "4", "--mlp-warmup-steps", "4",
                 "--val-every", "2", "--batch-size", "4", "--device", "cpu", "--context", "16", "--horizon", "4",
                 *sets]) == 0
    assert "the model kept is POCO's MLP" in capsys.readouterr().err  # the training run says it too
    for path, flagged in ((warm, True), (ckpt, False)):
        assert main(["embed", str(path), *map(str, paths), "--clusters", "2", "--json"]) == 0
        notes = json.loads(capsys.readouterr().out)["notes"]
        assert (UNUSED_EMBEDDINGS in notes) is flagged
    assert "--embedding-lr-scale 10" in UNUSED_EMBEDDINGS  # names the training that gives embeddings to analyse


def test_embed_analyses_what_training_learned(checkpoint_and_data, tmp_path, capsys):
    """By default each unit row's initial random draw (kept with the weights) is taken away, leaving what
    training put there; `--as-stored` analyses the rows as they are."""
    ckpt, paths = checkpoint_and_data
    for argv, rows in (([], "learned"), (["--as-stored"], "as stored")):
        assert main(["embed", str(ckpt), *map(str, paths), "--clusters", "2", "--json", *argv]) == 0
        assert json.loads(capsys.readouterr().out)["rows"] == rows
    model = load_model(ckpt)
    learned, stored = analyze_model(model, n_clusters=2), analyze_model(model, learned=False, n_clusters=2)
    initial = torch.cat([model.initial_unit_embeddings(s.session) for s in model.sessions]).numpy()
    np.testing.assert_allclose(stored.embedding - learned.embedding, initial, atol=1e-6)
    assert (learned.rows, stored.rows, learned.source) == ("learned", "as stored", "model") and initial.any()
    legacy = load_checkpoint(ckpt)  # written before the draw was kept: analysed as stored, and said so
    legacy["model"]["state_dict"] = {k: v for k, v in legacy["model"]["state_dict"].items() if ".initial." not in k}
    save_checkpoint(tmp_path / "legacy.pt", legacy)
    old = analyze_model(tmp_path / "legacy.pt", n_clusters=2)
    assert old.rows == "as stored" and NO_INITIAL_ROWS in old.notes
    np.testing.assert_array_equal(old.embedding, stored.embedding)


def test_embed_of_a_run_kept_at_its_mlp_reads_what_its_population_stage_learned(checkpoint_and_data, tmp_path, capsys):
    """A warm-up whose stage 2 never beat the MLP keeps the MLP (its forecasts ignore the unit rows) and,
    in the same checkpoint, the rows stage 2 learned: those are analysed, and the summary says whose."""
    _, paths = checkpoint_and_data
    run = train([load_recording(p) for p in paths], "poco", steps=12, device="cpu", checkpoint=tmp_path / "mlp.pt", batch_size=4, val_every=2,
                mlp_warmup=True, mlp_warmup_steps=4, mlp_warmup_se=1e9, lr=1e-2, **TINY)
    assert run.wait()["kept"] == "mlp"
    assert main(["embed", str(tmp_path / "mlp.pt"), *map(str, paths), "--clusters", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["source"], summary["rows"]) == ("population stage", "learned") and UNUSED_EMBEDDINGS not in summary["notes"]
    assert any(n.startswith("the model kept is POCO's MLP") and "population stage" in n for n in summary["notes"])
    model, stage = load_model(tmp_path / "mlp.pt"), load_checkpoint(tmp_path / "mlp.pt")["population_embeddings"]
    expected = torch.cat([stage["unit"][s.session] - model.initial_unit_embeddings(s.session) for s in model.sessions])
    np.testing.assert_allclose(analyze_model(model, n_clusters=2).embedding, expected.numpy(), atol=1e-6)


def test_embed_reports_bad_input_as_exit_code_2(checkpoint_and_data, tmp_path, capsys):
    ckpt, _ = checkpoint_and_data
    assert main(["embed", str(ckpt), "--method", "hdbscan", "--clusters", "4"]) == 2
    assert "HDBSCAN" in capsys.readouterr().err
    assert main(["embed", str(tmp_path / "missing.pt")]) == 2


def test_embed_without_regions_writes_table_with_a_note(checkpoint_and_data, tmp_path, capsys):
    """Issue 14 bug 3: recordings without region labels (the usual case) used to fail after the analysis."""
    from dataclasses import replace

    from poco_core.data.io import load_recording

    ckpt, paths = checkpoint_and_data
    bare = [save_recording(replace(load_recording(p), regions=None), tmp_path / p.name) for p in paths]
    out = tmp_path / "embed.csv"
    assert main(["embed", str(ckpt), *map(str, bare), "--out", str(out), "--clusters", "2"]) == 0
    captured = capsys.readouterr()
    assert "region similarity skipped" in captured.err and f"wrote {out}" in captured.out
    with open(out) as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:5] == ["session", "roi_id", "umap_x", "umap_y", "cluster"] and len(rows) == 81
    assert main(["embed", str(ckpt), *map(str, bare), "--clusters", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["recovery"] is None and "no region labels" in summary["notes"][0]
