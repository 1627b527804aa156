"""Batch sampling across sessions, and fast gathering of windows into arrays.

As in the reference (a shuffled DataLoader), training walks through epochs: each epoch is a
fresh permutation of the union of all sessions' training windows, so every window is seen once
per epoch and each session contributes in proportion to its window count. Epochs follow one
another without a short last batch (every batch has ``batch_size`` windows). A batch is grouped
by session because a model step runs one tensor per session (sessions differ in unit count).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


class SessionBatchSampler:
    """Batches of ``batch_size`` windows from per-epoch shuffles, grouped by session.

    Epoch e's permutation comes from ``seed`` and e alone, and batch k is positions
    [k*B, (k+1)*B) of the epochs laid end to end, so a run resumed at batch ``start`` draws
    exactly the batches an uninterrupted run would have drawn."""

    def __init__(self, window_counts: Sequence[int], batch_size: int, seed: int | Sequence[int], start: int = 0):
        counts = np.asarray(window_counts, dtype=np.int64)
        if counts.ndim != 1 or len(counts) == 0 or counts.sum() == 0:
            raise ValueError("need at least one session with at least one window")
        self.counts = counts
        self.batch_size = int(batch_size)
        self.seed = [int(seed)] if np.isscalar(seed) else [int(x) for x in seed]  # type: ignore[union-attr]
        self.drawn = int(start)  # batches drawn so far
        self._bounds = np.cumsum(counts)
        self._total = int(self._bounds[-1])
        self._epoch, self._perm = -1, np.zeros(0, np.int64)

    @property
    def epoch(self) -> float:
        """Passes over the training windows so far (fractional)."""
        return self.drawn * self.batch_size / self._total

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = np.random.default_rng([*self.seed, epoch]).permutation(self._total)
        return self._perm

    def sample(self) -> list[tuple[int, np.ndarray]]:
        """[(session index, window indices sorted), ...] for the sessions drawn this time."""
        pos = self.drawn * self.batch_size + np.arange(self.batch_size)
        self.drawn += 1
        epochs, offsets_in = np.divmod(pos, self._total)
        flat = np.concatenate([self._permutation(int(e))[offsets_in[epochs == e]] for e in np.unique(epochs)])
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
