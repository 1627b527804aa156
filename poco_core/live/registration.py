"""Rigid registration of each new frame to a reference image, fast enough for 30 Hz.

Follows suite2p's rigid step (facts from its documented defaults, own code): the reference is
clipped to its 1st-99th percentile, both images are edge-tapered by a sigmoid (width
``taper`` = 3.45 px) with the border set to the reference mean, whitened (phase correlation),
and the correlation is smoothed by a Gaussian (``smooth_sigma`` = 1.15 px) in the Fourier
domain; the peak is searched within ``max_shift`` (0.1 of the smaller side). Unlike suite2p
1.1.0's whole-pixel rigid offsets, the peak is refined to subpixel precision: the smoothed
correlation of a translated image is a sampled Gaussian, so a parabola through the log of the
peak and its neighbours (one per axis) finds its centre; the frame is shifted back by bilinear
interpolation.

Sign: ``shift = (dy, dx)`` means the frame shows the reference moved by +dy rows and +dx
columns (``frame(y, x) = reference(y - dy, x - dx)``); ``apply`` undoes it.
"""
from __future__ import annotations

import numpy as np
import scipy.fft as sfft

from poco_core.base.errors import PocoError

SMOOTH_SIGMA = 1.15
TAPER = 3.45
MAX_SHIFT = 0.1


def edge_taper(shape: tuple[int, int], width: float) -> np.ndarray:
    """(Ly, Lx) sigmoid window: ~1 inside, falling to 0 over ``width`` px at the borders."""
    axes = []
    for n in shape:
        d = np.abs(np.arange(n) - (n - 1) / 2)
        axes.append(1.0 / (1.0 + np.exp((d - ((n - 1) / 2 - 2 * width)) / width)))
    return (axes[0][:, None] * axes[1][None, :]).astype(np.float32)


def _gaussian_spectrum(shape: tuple[int, int], sigma: float) -> np.ndarray:
    """The (Ly, Lx//2+1) real spectrum of a unit-sum Gaussian of ``sigma`` px (for rfft2)."""
    fy = sfft.fftfreq(shape[0])[:, None]
    fx = sfft.rfftfreq(shape[1])[None, :]
    return np.exp(-2 * np.pi**2 * sigma**2 * (fy**2 + fx**2)).astype(np.float32)


def _vertex(left: float, mid: float, right: float) -> float:
    """Offset (-0.5..0.5) of the vertex of a parabola through three samples; log first when all positive."""
    if left > 0 and mid > 0 and right > 0:
        left, mid, right = np.log(left), np.log(mid), np.log(right)
    denom = left - 2 * mid + right
    if denom >= 0:
        return 0.0
    return float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5))


class RigidRegistration:
    """Phase correlation of frames against one reference; ``register(frame) -> (registered, (dy, dx), peak)``."""

    def __init__(self, reference: np.ndarray, max_shift: float = MAX_SHIFT, smooth_sigma: float = SMOOTH_SIGMA,
                 taper: float = TAPER):
        ref = np.asarray(reference, dtype=np.float32)
        if ref.ndim != 2:
            raise PocoError(f"the reference image must be 2-D, got shape {ref.shape}")
        self.shape = ref.shape
        self.lo, self.hi = (float(v) for v in np.percentile(ref, [1, 99]))
        self.reference = ref
        ref = np.clip(ref, self.lo, self.hi)
        self.mask = edge_taper(self.shape, taper)
        self.offset = (float(ref.mean()) * (1.0 - self.mask)).astype(np.float32)
        spec = sfft.rfft2(ref * self.mask + self.offset, workers=1)
        self._ref = (np.conj(spec) / (1e-5 + np.abs(spec)) * _gaussian_spectrum(self.shape, smooth_sigma)).astype(np.complex64)
        side = min(self.shape)
        self.max_shift_px = int(min(round(max_shift * side), side // 2 - 1))

    def shift(self, frame: np.ndarray) -> tuple[float, float, float]:
        """(dy, dx, peak correlation) of ``frame`` relative to the reference."""
        data = np.clip(np.asarray(frame, dtype=np.float32), self.lo, self.hi)
        data *= self.mask
        data += self.offset
        spec = sfft.rfft2(data, workers=1)
        spec /= 1e-5 + np.abs(spec)
        cc = sfft.irfft2(spec * self._ref, s=self.shape, workers=1)
        r = self.max_shift_px
        rows = np.r_[-r:r + 1]
        win = cc[np.ix_(rows % self.shape[0], rows % self.shape[1])]
        iy, ix = np.unravel_index(int(np.argmax(win)), win.shape)
        py, px = int(rows[iy]), int(rows[ix])
        at = lambda y, x: float(cc[y % self.shape[0], x % self.shape[1]])  # noqa: E731
        peak = at(py, px)
        dy = py + _vertex(at(py - 1, px), peak, at(py + 1, px))
        dx = px + _vertex(at(py, px - 1), peak, at(py, px + 1))
        return dy, dx, peak

    @staticmethod
    def apply(frame: np.ndarray, dy: float, dx: float) -> np.ndarray:
        """The frame moved back by (dy, dx): ``out(y, x) = frame(y + dy, x + dx)``, bilinear, wrapping at the edges."""
        out = np.asarray(frame, dtype=np.float32)
        for axis, d in ((0, dy), (1, dx)):
            whole = int(np.floor(d))
            frac = np.float32(d - whole)
            base = np.roll(out, -whole, axis=axis)
            if frac:
                out = base * (1 - frac) + np.roll(base, -1, axis=axis) * frac
            else:
                out = base
        return out

    def register(self, frame: np.ndarray) -> tuple[np.ndarray, tuple[float, float], float]:
        dy, dx, peak = self.shift(frame)
        return self.apply(frame, dy, dx), (dy, dx), peak


def reference_from_frames(frames: np.ndarray, iterations: int = 3) -> np.ndarray:
    """A reference image from the first frames when the segmentation has none: their mean,
    refined by registering the frames to it and averaging again (as suite2p refines its refImg)."""
    frames = np.asarray(frames, dtype=np.float32)
    ref = frames.mean(axis=0)
    for _ in range(iterations):
        reg = RigidRegistration(ref)
        ref = np.mean([reg.register(f)[0] for f in frames], axis=0)
    return ref
