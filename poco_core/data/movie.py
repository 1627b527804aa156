"""A two-photon-like movie rendered from a simulated recording, written as TIFF files at a rate.

Each frame is the recording's scene (a dim copy of its anatomy plus every ROI's footprint times
its activity, in photons), moved rigidly by a slow drift plus a little jitter, with Poisson shot
noise: what a microscope would write for the live-extraction demo, tests and benchmark. The
segmentation that goes with it is the recording itself (footprints in scene coordinates) with
the noise-free mean scene as its reference image (``movie_segmentation``).
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import scipy.ndimage as ndi

from poco_core.base.errors import PocoError
from poco_core.base.events import CancelLike, is_cancelled
from poco_core.data.recording import Recording


def _activity(rec: Recording, start: int, stop: int) -> np.ndarray:
    """(k, N) non-negative activity in [0, ~3] from any traces (softplus of per-ROI z-scores)."""
    x = np.asarray(rec.traces[start:stop], dtype=np.float32)
    mean, std = np.asarray(rec.traces).mean(0), np.asarray(rec.traces).std(0) + 1e-6
    return np.log1p(np.exp((x - mean) / std))


def _background(rec: Recording) -> np.ndarray:
    img = np.asarray(rec.anatomy, dtype=np.float32) if rec.anatomy is not None else np.zeros(rec.image_shape, np.float32)
    img = ndi.gaussian_filter(img - img.min(), 1.0)
    return img / max(float(img.max()), 1e-6)


def movie_shifts(n_frames: int, fs: float, drift_px: float = 2.0, jitter_px: float = 0.3, seed: int = 0) -> np.ndarray:
    """(T, 2) rigid shifts [dy, dx]: slow sinusoidal drift (periods 40 s and 55 s) plus Gaussian jitter."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / fs
    drift = drift_px * np.stack([np.sin(2 * np.pi * t / 40.0), np.sin(2 * np.pi * t / 55.0 + 1.0)], 1)
    return (drift + rng.normal(0, jitter_px, (n_frames, 2))).astype(np.float32)


def render_frames(rec: Recording, photons: float = 30.0, drift_px: float = 2.0, jitter_px: float = 0.3,
                  seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(uint16 frame, shift [dy, dx]) per frame of ``rec``; ``photons`` is the brightest ROI pixel's mean count."""
    if rec.footprints is None or rec.image_shape is None:
        raise PocoError("a movie needs a recording with footprints (e.g. simulate_recording)")
    shape = tuple(rec.image_shape)
    rng = np.random.default_rng(seed)
    background = 0.3 * photons * _background(rec) + 0.05 * photons
    fp_t = rec.footprints.T.tocsr() * np.float32(photons)
    shifts = movie_shifts(rec.n_frames, rec.fs, drift_px, jitter_px, seed)
    for start in range(0, rec.n_frames, 256):
        act = _activity(rec, start, min(start + 256, rec.n_frames))
        for i, a in enumerate(act):
            scene = background + np.asarray(fp_t @ a).reshape(shape)
            moved = ndi.shift(scene, shifts[start + i], order=1, mode="nearest")
            yield np.minimum(rng.poisson(moved), 65535).astype(np.uint16), shifts[start + i]


def movie_segmentation(rec: Recording, photons: float = 30.0) -> Recording:
    """The recording as a segmentation of its movie: anatomy = the noise-free mean scene."""
    shape = tuple(rec.image_shape)
    mean_act = _activity(rec, 0, rec.n_frames).mean(0)
    scene = 0.3 * photons * _background(rec) + 0.05 * photons + np.asarray(rec.footprints.T @ mean_act).reshape(shape) * photons
    return replace(rec, anatomy=scene.astype(np.float32), provenance={**rec.provenance, "movie_photons": photons})


def write_tiff_frames(frames: Iterator[tuple[np.ndarray, np.ndarray]], folder: str | Path, fs: float,
                      frames_per_file: int = 100, cancel: CancelLike | None = None,
                      on_write: Callable[[int, float], None] | None = None) -> int:
    """Write frames into ``folder`` as ``frames_00000.tif``... (``frames_per_file`` pages each), page by page
    and flushed, on a fixed schedule (frame i due at start + i / fs). ``on_write(i, monotonic time)`` after
    each page. Returns the number of frames written."""
    import tifffile

    if fs <= 0 or frames_per_file < 1:
        raise PocoError(f"need a positive rate and >= 1 frame per file, got fs={fs}, frames_per_file={frames_per_file}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    writer, n, start = None, 0, time.monotonic()
    try:
        for frame, _ in frames:
            while (wait := start + n / fs - time.monotonic()) > 0:
                if is_cancelled(cancel):
                    return n
                time.sleep(min(wait, 0.05))
            if n % frames_per_file == 0:
                if writer is not None:
                    writer.close()
                writer = tifffile.TiffWriter(folder / f"frames_{n:05d}.tif")
            writer.write(frame, contiguous=False, photometric="minisblack", metadata=None)
            writer.filehandle.flush()
            n += 1
            if on_write is not None:
                on_write(n - 1, time.monotonic())
    finally:
        if writer is not None:
            writer.close()
    return n
