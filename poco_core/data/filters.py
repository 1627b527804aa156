"""Butterworth filters of the POCO preprocessing (appendix A.3), zero-phase and causal.

Cut-offs are fractions of the sampling rate, as in the paper: low-pass at 0.1 x fs, band-pass
additionally removes below 5e-3 x fs. Zero-phase filtering looks at future samples, so live
use needs :class:`CausalFilter`, which keeps its state between chunks.
"""
from __future__ import annotations

import numpy as np
from scipy import signal

from poco_core.base.errors import PocoError

FILTERS = ("none", "lowpass", "bandpass", "causal_lowpass")
ORDER = 4
LOW_CUT = 0.1  # x fs
HIGH_PASS_CUT = 5e-3  # x fs
_COLUMN_BLOCK = 1024  # filter this many ROIs at a time to bound the float64 temporaries


def butter_sos(kind: str, fs: float) -> np.ndarray:
    """Second-order sections of the 4th-order Butterworth named by ``kind``."""
    if kind in ("lowpass", "causal_lowpass"):
        return signal.butter(ORDER, LOW_CUT * fs, btype="lowpass", fs=fs, output="sos")
    if kind == "bandpass":
        return signal.butter(ORDER, [HIGH_PASS_CUT * fs, LOW_CUT * fs], btype="bandpass", fs=fs, output="sos")
    raise PocoError(f"unknown filter {kind!r}; choose one of {', '.join(FILTERS)}")


def _by_columns(x: np.ndarray, fn) -> np.ndarray:
    """Apply ``fn`` to column blocks of (T, N) ``x``, writing float32 into a new array."""
    out = np.empty(x.shape, dtype=np.float32)
    for j in range(0, x.shape[1], _COLUMN_BLOCK):
        out[:, j : j + _COLUMN_BLOCK] = fn(x[:, j : j + _COLUMN_BLOCK])
    return out


def zero_phase(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """Forward-backward filter (T, N) along time; short inputs get a shorter edge padding."""
    padlen = 3 * (2 * len(sos) + 1)
    padlen = min(padlen, x.shape[0] - 1)
    return _by_columns(x, lambda b: signal.sosfiltfilt(sos, b, axis=0, padlen=max(padlen, 0)))


class CausalFilter:
    """Streaming low-pass: ``process(chunk)`` filters (T, N) chunks and keeps the filter state.

    The state starts at the steady state of the first sample, so a constant input passes
    unchanged instead of ringing up from zero. Output at t depends only on samples <= t.
    """

    def __init__(self, fs: float, kind: str = "causal_lowpass"):
        self.sos = butter_sos(kind, fs)
        self._zi: np.ndarray | None = None

    def reset(self) -> None:
        self._zi = None

    def process(self, chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 2:
            raise PocoError(f"CausalFilter.process expects (T, N) chunks, got shape {chunk.shape}")
        if chunk.shape[0] == 0:
            return chunk
        if self._zi is None:
            self._zi = signal.sosfilt_zi(self.sos)[:, :, None] * chunk[0].astype(np.float64)
        elif self._zi.shape[2] != chunk.shape[1]:
            raise PocoError(f"CausalFilter got {chunk.shape[1]} ROIs after {self._zi.shape[2]}")
        y, self._zi = signal.sosfilt(self.sos, chunk, axis=0, zi=self._zi)
        return y.astype(np.float32)


def apply_filter(x: np.ndarray, kind: str, fs: float) -> np.ndarray:
    """Filter a whole (T, N) segment; the causal variant starts from a fresh state."""
    if kind == "none":
        return x
    if kind == "causal_lowpass":
        return CausalFilter(fs, kind).process(x)
    return zero_phase(x, butter_sos(kind, fs))
