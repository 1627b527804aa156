"""The batch sampler: windows drawn in proportion to each session's count, grouped by session."""
from __future__ import annotations

import numpy as np

from poco_core.data.windows import WindowDataset
from poco_core.training.sampling import (
    SessionBatchSampler,
    evenly_spaced,
    gather_windows,
)


def test_proportions_follow_window_counts():
    counts = [100, 300, 600]
    sampler = SessionBatchSampler(counts, 64, 0)
    drawn = np.zeros(3)
    for _ in range(300):
        for s, idx in sampler.sample():
            drawn[s] += len(idx)
    np.testing.assert_allclose(drawn / drawn.sum(), np.array(counts) / sum(counts), atol=0.015)


def test_batches_are_grouped_by_session_and_in_range():
    counts = [5, 1, 40]
    sampler = SessionBatchSampler(counts, 32, 1)
    for _ in range(50):
        groups = sampler.sample()
        sessions = [s for s, _ in groups]
        assert sessions == sorted(set(sessions))  # one group per session, in order
        assert sum(len(i) for _, i in groups) == 32
        for s, idx in groups:
            assert idx.min() >= 0 and idx.max() < counts[s] and np.all(np.diff(idx) >= 0)


def test_same_seed_same_batches():
    a = SessionBatchSampler([10, 20], 8, 3)
    b = SessionBatchSampler([10, 20], 8, 3)
    for _ in range(5):
        assert all(sa == sb and np.array_equal(ia, ib) for (sa, ia), (sb, ib) in zip(a.sample(), b.sample()))


def test_gather_matches_indexing_and_spacing():
    values = np.arange(200, dtype=np.float32).reshape(100, 2)
    wins = WindowDataset(values, [(0, 40), (60, 100)], 8, 1)
    idx = np.array([0, 5, 40, len(wins) - 1])
    np.testing.assert_array_equal(gather_windows(wins, idx), np.stack([wins[i] for i in idx]))
    assert len(evenly_spaced(1000, 10)) == 10 and evenly_spaced(1000, 10)[-1] == 999
    assert len(evenly_spaced(5, 10)) == 5 and len(evenly_spaced(5, None)) == 5


def test_each_epoch_is_a_shuffle_of_every_window():
    """As the reference's shuffled DataLoader: within an epoch no window repeats or is skipped."""
    counts = [7, 13, 12]  # 32 windows = 4 batches of 8
    sampler = SessionBatchSampler(counts, 8, 5)
    for epoch in range(3):
        seen = []
        for _ in range(4):
            for s, idx in sampler.sample():
                seen += [(s, int(i)) for i in idx]
        assert sorted(seen) == [(s, i) for s, n in enumerate(counts) for i in range(n)]
        assert sampler.epoch == epoch + 1


def test_resumed_sampler_draws_the_same_batches():
    full = SessionBatchSampler([10, 20], 8, (1, 0, 0))
    batches = [full.sample() for _ in range(9)]
    resumed = SessionBatchSampler([10, 20], 8, (1, 0, 0), start=5)
    for want in batches[5:]:
        got = resumed.sample()
        assert [s for s, _ in got] == [s for s, _ in want]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, want))
