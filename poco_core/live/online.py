"""Honest online preprocessing and a rolling forecaster: at frame t only frames <= t are used.

Offline preprocessing fits statistics on the whole recording and may filter forward-backward;
neither is possible while the animal is still under the microscope. Here z-score statistics are
running (Welford, updated frame by frame) or frozen after a calibration period, the filter is the
streaming causal Butterworth, and PCA is fitted on the calibration frames only. Within a block of
frames that arrive together each frame is still normalised with the statistics of frames up to
itself, so batching never lets a forecast see its future. A model trained on binned frames
(``--bin-frames``/``--target-fs``) gets the same binning here: each run of ``bin`` raw frames is
averaged into one model frame as soon as its last frame arrives, before everything else, as
offline (``poco_core.data.preprocess``); a partial bin waits for its remaining frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from poco_core.base.errors import PocoError
from poco_core.data.filters import CausalFilter
from poco_core.data.preprocess import PreprocessConfig, PreprocessState

ZSCORE_MODES = ("running", "frozen", "none")
ONLINE_FILTERS = ("none", "causal_lowpass")
_MIN_SD = 1e-6


@dataclass
class OnlineConfig:
    """zscore: running | frozen (after ``calibration`` frames) | none; filter: none | causal_lowpass;
    pca_k: project on K components fitted on the ``calibration`` frames (needs calibration);
    bin: raw frames averaged into one model frame (``calibration`` counts model frames)."""

    zscore: str = "running"
    filter: str = "none"
    pca_k: int | None = None
    calibration: int = 0
    bin: int = 1

    def __post_init__(self) -> None:
        if int(self.bin) != self.bin or self.bin < 1:
            raise PocoError(f"bin must be a positive whole number of frames, got {self.bin}")
        self.bin = int(self.bin)
        if self.filter in ("lowpass", "bandpass"):
            raise PocoError(f"filter {self.filter!r} is zero-phase and uses future frames; live mode can only use 'causal_lowpass'")
        if self.filter not in ONLINE_FILTERS:
            raise PocoError(f"unknown live filter {self.filter!r}; choose one of {', '.join(ONLINE_FILTERS)}")
        if self.zscore not in ZSCORE_MODES:
            raise PocoError(f"unknown z-score mode {self.zscore!r}; choose one of {', '.join(ZSCORE_MODES)}")
        if self.pca_k and self.zscore == "running":
            self.zscore = "frozen"  # components fitted on calibration frames need the statistics they were fitted with
        if (self.zscore == "frozen" or self.pca_k) and self.calibration < 2:
            raise PocoError("frozen z-score and PCA need a calibration period of at least 2 frames")


class OnlinePreprocessor:
    """Raw frames in, unit-space frames out (filtered ROIs, or PCs), plus per-frame normalisation.

    ``push(raw)`` returns ``(u, mean, sd)``: ``u`` the new unit-space frames (none while a PCA
    calibration is still running, then the whole calibration period at once; with binning, one
    per completed bin), and the statistics of frames up to each one, so the model input of frame
    t is ``(u_t - mean_t) / sd_t``. ``fs`` is the model-frame rate (``input_fs / bin``).
    """

    def __init__(self, n_rois: int, fs: float, config: OnlineConfig | None = None):
        self.config = config or OnlineConfig()
        self.n_rois = n_rois
        self.input_fs = float(fs)
        self.bin = self.config.bin
        self.fs = self.input_fs / self.bin
        self.n_seen = 0
        self.n_nonfinite = 0
        self._pending = np.zeros((0, n_rois), np.float32)  # raw frames of the bin not yet complete
        self._filter = CausalFilter(self.fs) if self.config.filter == "causal_lowpass" else None
        self._count = 0
        self._mean = np.zeros(n_rois)
        self._m2 = np.zeros(n_rois)
        self._last = np.zeros(n_rois, dtype=np.float32)
        self._calib: list[np.ndarray] = []
        self._components: np.ndarray | None = None  # (K, N) after the PCA calibration

    @property
    def n_units(self) -> int:
        return self.config.pca_k if self.config.pca_k else self.n_rois

    @property
    def unit_ids(self) -> list[str] | None:
        """PC names with PCA, None when units are the ROIs themselves."""
        return [f"pc{i}" for i in range(self.config.pca_k)] if self.config.pca_k else None

    @property
    def frozen(self) -> bool:
        return self.config.zscore == "frozen" and self.n_seen >= self.config.calibration

    @property
    def n_constant(self) -> int:
        """ROIs whose variance is zero so far; they are kept at 0 instead of divided by 0."""
        return int((self._sd() <= _MIN_SD).sum()) if self._count > 1 else 0

    def describe(self) -> str:
        """One line saying exactly which preprocessing is in force right now."""
        c = self.config
        if c.zscore == "running":
            z = f"z-score: running mean/std of frames 0..t (Welford, {self._count} frames so far)"
        elif c.zscore == "frozen":
            z = f"z-score: frozen from calibration frames 0..{c.calibration - 1}"
            if not self.frozen:
                z += f" (calibrating: {self.n_seen}/{c.calibration})"
        else:
            z = "z-score: none"
        f = f"causal 4th-order Butterworth low-pass {0.1 * self.fs:.3g} Hz" if self._filter else "none (no zero-phase filtering live)"
        p = f"PCA: {c.pca_k} components fitted on calibration frames 0..{c.calibration - 1}" if c.pca_k else "PCA: none"
        binning = [f"binning: {self.bin} frames into 1, {self.input_fs:g} Hz -> {self.fs:.4g} Hz"] if self.bin > 1 else []
        notes = [f"{self.n_constant} constant ROIs kept at 0"] if self.n_constant else []
        if self.n_nonfinite:
            notes.append(f"{self.n_nonfinite} NaN/Inf values replaced by the previous value")
        return " · ".join([*binning, z, f"filter: {f}", p, *notes])

    # -- statistics ------------------------------------------------------------------
    def _sd(self) -> np.ndarray:
        return np.sqrt(self._m2 / max(self._count - 1, 1))

    @staticmethod
    def _safe(sd: np.ndarray) -> np.ndarray:
        return np.where(sd > _MIN_SD, sd, 1.0)

    def _running(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Welford over a block: statistics after each frame (k, N), computed around the old mean."""
        y = x.astype(np.float64) - self._mean
        n = self._count + np.arange(1, len(x) + 1)[:, None]
        sy, sq = np.cumsum(y, axis=0), np.cumsum(y * y, axis=0)
        mean = self._mean + sy / n
        m2 = self._m2 + sq - sy * sy / n
        self._count, self._mean, self._m2 = int(n[-1, 0]), mean[-1], m2[-1]
        sd = np.sqrt(np.maximum(m2, 0) / np.maximum(n - 1, 1))
        return mean.astype(np.float32), self._safe(sd).astype(np.float32)

    def current_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, sd) per unit now; zeros and ones where units are not z-scored here (PCs, zscore none)."""
        if self.config.pca_k or self.config.zscore == "none":
            return np.zeros(self.n_units, np.float32), np.ones(self.n_units, np.float32)
        return self._mean.astype(np.float32), self._safe(self._sd()).astype(np.float32)

    def _stats_rows(self) -> tuple[np.ndarray, np.ndarray]:
        mean, sd = self.current_stats()
        return mean[None], sd[None]

    def _clean(self, raw: np.ndarray) -> np.ndarray:
        """Carry the last finite value forward over NaN/Inf so one bad pixel never poisons the stats."""
        x = np.array(raw, dtype=np.float32)
        bad = ~np.isfinite(x)
        if bad.any():
            self.n_nonfinite += int(bad.sum())
            for i in np.flatnonzero(bad.any(axis=1)):
                x[i, bad[i]] = (self._last if i == 0 else x[i - 1])[bad[i]]
        if len(x):
            self._last = x[-1].copy()
        return x

    def _binned(self, x: np.ndarray) -> np.ndarray:
        """Means of the bins completed by these raw frames; the rest waits for the next push."""
        if self.bin == 1:
            return x
        x = np.concatenate([self._pending, x])
        n = len(x) // self.bin * self.bin
        self._pending = x[n:].copy()
        return x[:n].reshape(-1, self.bin, self.n_rois).mean(axis=1, dtype=np.float32)

    @property
    def pending(self) -> int:
        """Raw frames received that do not yet make a whole bin."""
        return len(self._pending)

    # -- the pipeline ----------------------------------------------------------------
    def push(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = self._binned(self._clean(raw))
        if not len(x):  # e.g. frames that do not yet complete a bin
            return (np.zeros((0, self.n_units), np.float32), *self._stats_rows())
        if self._filter is not None:
            x = self._filter.process(x)
        calib_left = max(self.config.calibration - self.n_seen, 0)
        self.n_seen += len(x)
        if self.config.zscore == "frozen" or self.config.pca_k:
            return self._push_calibrated(x, calib_left)
        if self.config.zscore == "none":
            return (x, *self._stats_rows())
        return (x, *self._running(x))

    def _push_calibrated(self, x: np.ndarray, calib_left: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frozen z-score and/or PCA: statistics come from the calibration frames only."""
        head = x[:calib_left]
        if len(head):
            self._running(head)
        if not self.config.pca_k:
            return (x, *self._stats_rows())  # no forecasts before calibration ends (see ready_from)
        if self._components is None:
            self._calib.append(head)
            if self.n_seen < self.config.calibration:
                return self._nothing()
            calib = np.concatenate(self._calib)
            self._calib = []
            self._fit_pca(calib)
            x = np.concatenate([calib, x[calib_left:]])
        return (self._project(x), *self._stats_rows())

    def _nothing(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = self.n_units
        return np.zeros((0, k), np.float32), np.zeros((1, k), np.float32), np.ones((1, k), np.float32)

    def _zscored(self, x: np.ndarray) -> np.ndarray:
        if self.config.zscore == "none":
            return x
        return (x - self._mean.astype(np.float32)) / self._safe(self._sd()).astype(np.float32)

    def _fit_pca(self, calib: np.ndarray) -> None:
        z = self._zscored(calib).astype(np.float64)
        k = self.config.pca_k
        if k > min(z.shape):
            raise PocoError(f"PCA with {k} components needs at least {k} calibration frames and ROIs, got {z.shape}")
        self._pca_mean = z.mean(axis=0)
        _, _, vt = np.linalg.svd(z - self._pca_mean, full_matrices=False)
        self._components = vt[:k].astype(np.float32)

    def _project(self, x: np.ndarray) -> np.ndarray:
        return ((self._zscored(x) - self._pca_mean.astype(np.float32)) @ self._components.T).astype(np.float32)

    def to_state(self, roi_ids: list[str]) -> PreprocessState:
        """The statistics in force now as an offline PreprocessState (stored with adapted checkpoints)."""
        c = self.config
        config = PreprocessConfig(zscore=c.zscore != "none", filter=c.filter, pca_k=c.pca_k, bin_frames=self.bin)
        state = PreprocessState(config=config, fs=self.fs, bin=self.bin, input_fs=self.input_fs,
                                input_ids=list(roi_ids), keep=np.arange(len(roi_ids)),
                                unit_ids=self.unit_ids or list(roi_ids), mean=self._mean.astype(np.float32),
                                std=self._safe(self._sd()).astype(np.float32), notes=[f"live: {self.describe()}"])
        if self._components is not None:
            state.pca_mean, state.pca_components = self._pca_mean.astype(np.float32), self._components
        return state

    @property
    def ready_from(self) -> int:
        """First frame index whose statistics are honest enough to forecast from."""
        return max(self.config.calibration, 2) if self.config.zscore == "frozen" or self.config.pca_k else 2
