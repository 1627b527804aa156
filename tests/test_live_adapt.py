"""Online adaptation: finetuning a pretrained model's embeddings on a new animal raises its live score."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from poco_core.data.simulate import simulate_cohort
from poco_core.live import LiveRecording, LiveSession, OnlineAdapter
from poco_core.training.restore import load_model
from poco_core.training.train import train

pytestmark = pytest.mark.slow  # pretraining a tiny POCO takes ~20 s on an idle CPU core, minutes on a busy one

TINY = dict(context=16, horizon=4, d_model=16, hidden=32, self_attn_heads=2, self_attn_head_dim=8, cross_head_dim=8)


@pytest.fixture(scope="module")
def cohort_and_model(tmp_path_factory):
    torch.set_num_threads(1)
    recs = simulate_cohort(n_sessions=4, n_rois=32, n_frames=800, sigma_j=0.1, seed=3)
    ckpt = tmp_path_factory.mktemp("pretrained") / "tiny.pt"
    train(recs[:3], "poco", steps=600, device="cpu", checkpoint=ckpt, val_every=200, batch_size=32, lr=2e-3,
          max_val_windows=64, **TINY).wait()
    return recs[3], load_model(ckpt)


def test_adaptation_swaps_in_better_embeddings_without_stopping_forecasts(cohort_and_model):
    animal, model = cohort_and_model
    x = np.asarray(animal.traces)
    window_s = 250 / animal.fs  # both scores cover the last 250 frames, all after the swap
    sources = [LiveRecording(animal.n_rois, animal.fs, animal.roi_ids) for _ in range(2)]
    base, adapted = (LiveSession(s, model, score_window_s=window_s) for s in sources)

    def feed(a: int, b: int) -> None:
        for i in range(a, b, 10):
            for s, session in zip(sources, (base, adapted)):
                s.append(x[i : min(i + 10, b)])
                session.step()

    feed(0, 400)
    swapped = threading.Event()
    events: list[dict] = []
    adapter = OnlineAdapter(adapted, steps=150, min_frames=300, lr=1e-2, max_val_windows=64,
                            on_event=lambda e: (events.append(e), e["type"] == "swapped" and swapped.set()))
    adapter.start()
    feed(400, 450)  # forecasts go on while the adapter trains in the background
    assert adapted.forecaster.latest.t == 449
    assert swapped.wait(900), [e for e in events if e["type"] == "error"]
    adapter.stop(timeout=60)
    assert adapted.forecaster.model_version >= 1 and base.forecaster.model_version == 0
    feed(450, len(x))
    before, after = base.forecaster.score(), adapted.forecaster.score(since_version=1)
    assert after.n_forecasts == before.n_forecasts
    assert after.score > before.score + 0.05, (before, after)
