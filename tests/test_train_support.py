"""Shared tiny data and model settings for the engine tests (train, finetune, forecast, CLI, DDP).

Holds no tests itself. Everything is sized so a training step takes milliseconds on one core.
"""
from __future__ import annotations

from functools import lru_cache

import torch

from poco_core.data.preprocess import PreparedData, PreprocessConfig, prepare
from poco_core.data.recording import Recording
from poco_core.data.simulate import simulate_cohort

# On this shared 2-core machine two intra-op threads contend with other processes and make a
# tiny step ~30x slower (34 ms vs 960 ms measured); one thread keeps these tests fast.
torch.set_num_threads(1)

CONTEXT, HORIZON = 12, 4
TINY_POCO = dict(context=CONTEXT, horizon=HORIZON, hidden=32, d_model=16, self_attn_heads=2,
                 self_attn_head_dim=8, cross_head_dim=8, ff_mult=2)
PREP = PreprocessConfig(block_len=200)
FAST = dict(batch_size=8, max_val_windows=16, eval_batch_size=64, device="cpu")


@lru_cache(maxsize=None)
def cohort(n_sessions: int = 3, n_rois: int = 12, n_frames: int = 600, seed: int = 0) -> tuple[Recording, ...]:
    return tuple(simulate_cohort(n_sessions, n_rois=n_rois, n_frames=n_frames, seed=seed, sigma_j=0.1))


def prepared(recs, config: PreprocessConfig = PREP) -> PreparedData:
    return prepare(list(recs), config)
