"""The paper's block split and a lazy windows dataset (re-exported by ``poco_core.data.preprocess``)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from poco_core.base.errors import InvalidTraces, PocoError

SPLITS = ("train", "val", "test")
Ranges = list[tuple[int, int]]


def split_blocks(n_frames: int, block_len: int = 1000, ratios: Sequence[float] = (3, 1, 1)) -> dict[str, Ranges]:
    """Cut [0, n_frames) into ``block_len`` blocks (the last absorbs the remainder) and split
    each block train/val/test by ``ratios`` in time order. Empty parts are left out."""
    if n_frames < 1:
        raise InvalidTraces(None, f"cannot split an empty recording ({n_frames} frames)")
    if block_len < 1 or len(ratios) != 3 or min(ratios) < 0 or sum(ratios) <= 0:
        raise PocoError(f"bad split: block_len={block_len}, ratios={tuple(ratios)}")
    n_blocks = max(1, n_frames // block_len)
    edges = [i * block_len for i in range(n_blocks)] + [n_frames]
    frac = np.cumsum(ratios) / float(sum(ratios))
    out: dict[str, Ranges] = {name: [] for name in SPLITS}
    for a, b in zip(edges[:-1], edges[1:]):
        cuts = [a] + [a + int(np.floor((b - a) * f)) for f in frac[:-1]] + [b]
        for name, lo, hi in zip(SPLITS, cuts[:-1], cuts[1:]):
            if hi > lo:
                out[name].append((lo, hi))
    return out


class WindowDataset:
    """Windows of ``length`` frames inside ``ranges`` of ``values`` (T, N), indexed lazily.

    Only the start frames are stored; a window never crosses a range end. As in the reference
    code, a range of n frames holds (n - length - 1) // stride + 1 windows: the last window ends
    one frame before the range does (so a range needs length + 1 frames). ``[i]`` returns a
    (length, N) float32 view when ``values`` is a float32 array.
    """

    def __init__(self, values: np.ndarray, ranges: Ranges, length: int, stride: int = 1):
        if length < 1 or stride < 1:
            raise PocoError(f"window length and stride must be >= 1, got {length}, {stride}")
        self.values = values
        self.length = int(length)
        self.stride = int(stride)
        self.ranges = [(int(a), int(b)) for a, b in ranges]
        starts = [np.arange(a, b - self.length, self.stride) for a, b in self.ranges]
        self.starts = np.concatenate(starts).astype(np.int64) if starts else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> np.ndarray:
        s = int(self.starts[i])
        return np.asarray(self.values[s : s + self.length], dtype=np.float32)

    def batch(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """(B, length, N) float32 for several windows at once (one gather, no per-window loop)."""
        rows = self.starts[np.asarray(indices)][:, None] + np.arange(self.length)
        return np.asarray(self.values[rows], dtype=np.float32)
