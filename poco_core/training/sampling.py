"""Batch sampling across sessions, and fast gathering of windows into arrays.

A batch draws windows uniformly from the union of all sessions' training windows, so each
session contributes in proportion to its window count; the draw is then grouped by session
because a model step runs one tensor per session (sessions differ in unit count).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


class SessionBatchSampler:
    """Draw `batch_size` windows per call, in proportion to window counts, grouped by session."""

    def __init__(self, window_counts: Sequence[int], batch_size: int, rng: np.random.Generator):
        counts = np.asarray(window_counts, dtype=np.int64)
        if counts.ndim != 1 or len(counts) == 0 or counts.sum() == 0:
            raise ValueError("need at least one session with at least one window")
        self.counts = counts
        self.batch_size = int(batch_size)
        self.rng = rng
        self._bounds = np.cumsum(counts)

    def sample(self) -> list[tuple[int, np.ndarray]]:
        """[(session index, window indices sorted), ...] for the sessions drawn this time."""
        flat = self.rng.integers(0, int(self._bounds[-1]), size=self.batch_size)
        session = np.searchsorted(self._bounds, flat, side="right")
        offsets = np.concatenate([[0], self._bounds[:-1]])
        local = flat - offsets[session]
        return [(int(s), np.sort(local[session == s])) for s in np.unique(session)]


def gather_windows(windows, idx: np.ndarray) -> np.ndarray:
    """(len(idx), L, N) float32 from a WindowDataset, vectorised when it exposes values/starts."""
    idx = np.asarray(idx, dtype=np.int64)
    values = getattr(windows, "values", None)
    starts = getattr(windows, "starts", None)
    length = getattr(windows, "length", None)
    if values is not None and starts is not None and length is not None:
        rows = np.asarray(starts)[idx][:, None] + np.arange(length)[None, :]
        return np.asarray(values[rows], dtype=np.float32)
    return np.stack([np.asarray(windows[int(i)], dtype=np.float32) for i in idx])


def evenly_spaced(n: int, cap: int | None) -> np.ndarray:
    """All indices below n, or `cap` of them spread evenly (keeps validation cheap but representative)."""
    if cap is None or n <= cap:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, cap).round().astype(np.int64))
