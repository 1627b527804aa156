"""Block split and lazy windows."""
from __future__ import annotations

import numpy as np
import pytest

from poco_core.base.errors import InvalidTraces
from poco_core.data.preprocess import WindowDataset, split_blocks


def test_split_sizes_per_block_and_last_block_absorbs_remainder():
    s = split_blocks(2500)
    assert s["train"] == [(0, 600), (1000, 1900)]
    assert s["val"] == [(600, 800), (1900, 2200)]
    assert s["test"] == [(800, 1000), (2200, 2500)]
    covered = sorted(r for part in s.values() for r in part)
    assert covered[0][0] == 0 and covered[-1][1] == 2500
    assert all(a[1] == b[0] for a, b in zip(covered, covered[1:]))


def test_split_short_recording_and_errors():
    assert split_blocks(500) == {"train": [(0, 300)], "val": [(300, 400)], "test": [(400, 500)]}
    with pytest.raises(InvalidTraces):
        split_blocks(0)


@pytest.mark.parametrize("length,stride", [(64, 1), (64, 8), (10, 3)])
def test_window_count_formula_and_no_block_crossing(length, stride):
    values = np.arange(3100, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    ranges = split_blocks(3100)["train"]
    ds = WindowDataset(values, ranges, length, stride)
    assert len(ds) == sum((b - a - length - 1) // stride + 1 for a, b in ranges)  # the reference's count
    for i in range(len(ds)):
        w = ds[i]
        assert w.shape == (length, 2) and w.dtype == np.float32
        lo, hi = int(w[0, 0]), int(w[-1, 0]) + 1
        assert any(a <= lo and hi <= b for a, b in ranges)
    idx = [0, len(ds) - 1]
    np.testing.assert_array_equal(ds.batch(idx), np.stack([ds[i] for i in idx]))


def test_windows_are_lazy_views():
    values = np.zeros((1000, 3), np.float32)
    ds = WindowDataset(values, [(0, 1000)], 64)
    assert np.shares_memory(ds[5], values)
    assert ds.starts.nbytes == 8 * len(ds)
    assert len(WindowDataset(values, [(0, 50)], 64)) == 0
