"""The paper's finding on the synthetic cohort: a briefly trained POCO's unit embeddings recover
brain regions (whose dynamics differ by construction) well above a shuffled-label control.

Thresholds come from measured runs (3 fish x 120 ROIs, 600 steps, 4 k-means clusters), three trainings:
ARI 0.087-0.12 (shuffled 0.000 +- 0.003), classifier accuracy 0.67-0.71 (shuffled 0.41-0.42, chance 0.48).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from poco_core.analysis.embedding import analyze_model
from poco_core.data.simulate import simulate_cohort
from poco_core.training.train import train

pytestmark = pytest.mark.slow
CONFIG = dict(context=48, horizon=16, hidden=64, d_model=32, self_attn_heads=2, self_attn_head_dim=16, cross_head_dim=16)


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    recs = simulate_cohort(3, 120, 1024, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only spin on a shared CPU (10x slower)
    try:
        run = train(recs, "poco", steps=600, device="cpu", checkpoint=tmp_path_factory.mktemp("cohort") / "poco.pt",
                    batch_size=16, lr=3e-3, val_every=600, **CONFIG)
        checkpoint = run.wait()["checkpoint"]
    finally:
        torch.set_num_threads(threads)
    return analyze_model(checkpoint, recs, n_clusters=4, seed=0)


def test_embeddings_recover_regions_above_shuffled_control(analysis):
    rec = analysis.recovery
    assert rec["ari"] > 0.04 and rec["ari"] - rec["ari_shuffled"] > 0.04, rec
    assert rec["accuracy"] - rec["accuracy_shuffled"] > 0.15, rec
    assert rec["accuracy"] > rec["chance"] + 0.08, rec


def test_similarity_rows_span_zero_to_one(analysis):
    sim = analysis.similarity
    assert sim.shape == (4, 4) and np.all((sim >= 0) & (sim <= 1))
    assert np.allclose(sim.max(axis=1), 1) and np.allclose(sim.min(axis=1), 0)
