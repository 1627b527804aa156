"""Preprocessing of the POCO protocol (appendix A.2/A.3) as a fitted, saveable state.

Pipeline per session: temporal binning (``bin_frames`` / ``target_fs``) -> ROI selection
(``iscell_only``) -> neuropil subtraction -> dF/F -> z-score -> filter -> PCA. Binning averages
each run of ``bin`` consecutive frames (a trailing partial bin is dropped), so model frames,
``block_len``, context and horizon count binned frames and ``state.fs`` is the binned rate. Statistics are fitted on the whole recording (``fit_on="all"``,
paper-compatible, leaks the test period) or on the training partition only (``"train"``).
ROIs that cannot be normalised -- zero variance, or a non-positive dF/F baseline -- are
dropped (never NaN) and listed in ``state.dropped`` with the reason in ``state.drop_reasons``.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Sequence

import numpy as np
from sklearn.decomposition import PCA

from poco_core.base.errors import InvalidTraces, PocoError
from poco_core.data.filters import FILTERS, apply_filter
from poco_core.data.recording import Recording
from poco_core.data.windows import SPLITS, Ranges, WindowDataset, split_blocks

__all__ = [
    "PreprocessConfig", "PreprocessState", "fit_preprocess", "split_blocks", "WindowDataset",
    "SessionData", "PreparedData", "prepare",
]

STREAM_BYTES = 1 << 28  # model inputs larger than this (256 MB) are fitted and written block by block
STREAM_BLOCK_BYTES = 1 << 26
STATE_VERSION = 1
CELL_COLUMNS = ("iscell", "accepted")  # suite2p's classifier, CaImAn's component evaluation
_ARRAYS = ("keep", "median", "mean", "std", "pca_mean", "pca_components")


@dataclass
class PreprocessConfig:
    """What to do to every session; ``fit_on="train"`` fits statistics on the training split only."""

    dff: bool = False
    zscore: bool = True
    filter: str = "none"
    pca_k: int | None = None
    fit_on: str = "all"
    neuropil_coef: float | None = None
    iscell_only: bool = False
    block_len: int = 1000
    split: tuple[float, float, float] = (3, 1, 1)
    bin_frames: int = 1  # average this many frames into one (1: no binning)
    target_fs: float | None = None  # or: bin to the nearest integer factor giving this rate (overrides bin_frames)

    def __post_init__(self) -> None:
        self.split = tuple(self.split)
        if int(self.bin_frames) < 1:
            raise PocoError(f"bin_frames must be a positive number of frames, got {self.bin_frames}")
        if self.target_fs is not None and not float(self.target_fs) > 0:
            raise PocoError(f"target_fs must be a positive rate in Hz, got {self.target_fs}")
        if self.filter not in FILTERS:
            raise PocoError(f"unknown filter {self.filter!r}; choose one of {', '.join(FILTERS)}")
        if self.fit_on not in ("all", "train"):
            raise PocoError(f"fit_on must be 'all' or 'train', got {self.fit_on!r}")
        if self.pca_k is not None and int(self.pca_k) < 1:
            raise PocoError(f"pca_k must be a positive number of components, got {self.pca_k}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["split"] = list(self.split)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class PreprocessState:
    """Fitted statistics; ``apply`` maps raw (T, N_input) traces to (T, N') float32.

    ``keep`` indexes the recording's ROIs that survive selection and dropping; ``unit_ids`` are
    their ids, or ``pc0..`` with PCA. ``median`` is set only with dF/F, ``pca_*`` only with PCA.
    """

    config: PreprocessConfig
    fs: float
    input_ids: list[str]
    keep: np.ndarray
    unit_ids: list[str]
    mean: np.ndarray
    std: np.ndarray
    median: np.ndarray | None = None
    neuropil_coef: float | None = None
    pca_mean: np.ndarray | None = None
    pca_components: np.ndarray | None = None
    dropped: list[str] = field(default_factory=list)
    drop_reasons: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    bin: int = 1  # raw frames averaged into one model frame; ``fs`` is the binned rate
    input_fs: float | None = None  # the recording's own rate (fs * bin)

    def __post_init__(self) -> None:
        if self.input_fs is None:
            self.input_fs = float(self.fs) * self.bin

    @property
    def n_input(self) -> int:
        return len(self.input_ids)

    def binned(self, traces: Any) -> Any:
        """(T, N) raw frames -> (T // bin, N) float32 means of consecutive runs (as is for bin 1)."""
        return traces if self.bin == 1 or traces is None else bin_frames(traces, self.bin)

    def report(self) -> list[str]:
        """What preprocessing did to this session, as plain sentences (printed by the CLI, shown in the GUI)."""
        out = [f"{len(self.keep)} of {self.n_input} ROIs kept"]
        by_reason: dict[str, list[str]] = {}
        for roi, why in self.drop_reasons.items():
            by_reason.setdefault(why, []).append(roi)
        out += [f"dropped {len(rois)} ROI(s) ({why}): {', '.join(rois[:10])}" + (" ..." if len(rois) > 10 else "")
                for why, rois in by_reason.items()]
        out += [n for n in self.notes if not n.startswith("dropped ")]
        if self.neuropil_coef is not None:
            out.append(f"neuropil subtracted: F - {self.neuropil_coef:g} x Fneu")
        c = self.config
        steps = (["dF/F"] if self.median is not None else []) + (["z-score"] if c.zscore else []) \
            + ([f"{c.filter} filter"] if c.filter != "none" else []) + ([f"PCA to {len(self.unit_ids)} components"]
                                                                          if self.pca_components is not None else [])
        out.append(f"{', '.join(steps) or 'no normalisation'}; statistics fitted on {'all frames' if c.fit_on == 'all' else 'the training split'}")
        if self.bin > 1:
            out.append(f"binned {self.bin} frames into 1: {self.input_fs:g} Hz -> {self.fs:.4g} Hz")
        return out

    def normalise(self, traces: Any, fneu: Any = None) -> np.ndarray:
        """Selection, neuropil, dF/F and z-score of (T, N_input) traces (no filter, no PCA)."""
        shape = getattr(traces, "shape", ())
        if len(shape) != 2 or shape[1] != self.n_input:
            raise InvalidTraces(None, f"expected (frames, {self.n_input}) traces, got shape {tuple(shape)}")
        x = np.array(traces[:, self.keep], dtype=np.float32)  # the one working copy (binned traces when binning)
        if self.neuropil_coef is not None:
            if fneu is None:
                raise PocoError("this preprocessing subtracts neuropil: pass the recording's Fneu traces")
            x -= np.float32(self.neuropil_coef) * np.asarray(fneu[:, self.keep], dtype=np.float32)
        if not np.isfinite(x).all():
            raise InvalidTraces(None, "traces contain NaN or Inf values")
        if self.median is not None:
            med = self.median.astype(np.float32)
            x -= med
            x /= med
        x -= self.mean.astype(np.float32)
        x /= self.std.astype(np.float32)
        return x

    def project(self, x: np.ndarray) -> np.ndarray:
        """Filter then PCA on normalised (T, N_keep) values (at the binned rate ``fs``)."""
        x = apply_filter(x, self.config.filter, self.fs)
        if self.pca_components is not None:
            x = (x - self.pca_mean.astype(np.float32)) @ self.pca_components.T.astype(np.float32)
        return np.ascontiguousarray(x, dtype=np.float32)

    def apply(self, traces: Any, fneu: Any = None) -> np.ndarray:
        """(T, N_input) raw traces -> (T // bin, N') float32 model inputs. ``fneu`` only with neuropil."""
        return self.project(self.normalise(self.binned(traces), self.binned(fneu)))

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Model-space (T, N') values back to the recording's units (neuropil-corrected F when
        neuropil was subtracted; filtering is not undone). Impossible after PCA."""
        if self.pca_components is not None:
            raise PocoError("cannot map PCA components back to ROI traces (PCA keeps only K components)")
        x = np.asarray(z, dtype=np.float32) * self.std.astype(np.float32) + self.mean.astype(np.float32)
        if self.median is not None:
            x = x * self.median.astype(np.float32) + self.median.astype(np.float32)
        return x

    def to_dict(self) -> dict[str, Any]:
        """Plain types and torch tensors only, so ``torch.load(weights_only=True)`` accepts it."""
        import torch  # only needed to serialise; keeps this module importable without it

        d: dict[str, Any] = {
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "fs": float(self.fs),
            "input_ids": list(self.input_ids),
            "unit_ids": list(self.unit_ids),
            "neuropil_coef": self.neuropil_coef,
            "dropped": list(self.dropped),
            "drop_reasons": dict(self.drop_reasons),
            "notes": list(self.notes),
            "bin": int(self.bin),
            "input_fs": float(self.input_fs),
        }
        for name in _ARRAYS:
            v = getattr(self, name)
            d[name] = None if v is None else torch.from_numpy(np.array(v))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessState":
        """Accepts ``to_dict`` output with torch tensors or numpy arrays."""
        if d.get("version") != STATE_VERSION:
            raise PocoError(f"unsupported preprocessing state version {d.get('version')!r}")
        arrays = {k: None if d[k] is None else _numpy(d[k]) for k in _ARRAYS}
        return cls(
            config=PreprocessConfig.from_dict(d["config"]),
            fs=float(d["fs"]),
            input_ids=list(d["input_ids"]),
            unit_ids=list(d["unit_ids"]),
            neuropil_coef=d["neuropil_coef"],
            dropped=list(d["dropped"]),
            drop_reasons=dict(d["drop_reasons"]),
            notes=list(d["notes"]),
            bin=int(d.get("bin", 1)),  # states written before binning existed: none
            input_fs=d.get("input_fs"),
            **arrays,
        )


def _numpy(v: Any) -> np.ndarray:
    """A numpy array from a (possibly GPU) torch tensor or an array."""
    return v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)


def neuropil(rec: Recording) -> Any:
    """The neuropil traces: suite2p's ``Fneu``, or the ``Neuropil/...`` series suite2p writes into NWB."""
    if "Fneu" in rec.extra_traces:
        return rec.extra_traces["Fneu"]
    return next((v for k, v in rec.extra_traces.items() if k.split("/")[0] == "Neuropil"), None)


def bin_frames(traces: Any, n: int, block: int = 4096) -> np.ndarray:
    """Means of consecutive runs of ``n`` frames, read ``block`` bins at a time (memmaps stay on disk)."""
    out = np.empty((traces.shape[0] // n, traces.shape[1]), dtype=np.float32)
    for lo in range(0, len(out), block):
        hi = min(lo + block, len(out))
        chunk = np.asarray(traces[lo * n:hi * n], dtype=np.float32)
        out[lo:hi] = chunk.reshape(hi - lo, n, -1).mean(axis=1)
    return out


def bin_factor(fs: float, config: PreprocessConfig) -> tuple[int, list[str]]:
    """Frames per bin for a recording at ``fs`` Hz, and notes when ``target_fs`` cannot be met exactly."""
    if config.target_fs is None:
        return int(config.bin_frames), []
    n = max(1, int(round(fs / float(config.target_fs))))
    notes = []
    if fs < float(config.target_fs) * 0.99:
        notes.append(f"target_fs {config.target_fs:g} Hz is above the recording's {fs:g} Hz; not resampled up")
    elif abs(fs / n - float(config.target_fs)) > 0.01 * float(config.target_fs):
        notes.append(f"{fs:g} Hz / {config.target_fs:g} Hz is not a whole number: binned by {n} to {fs / n:.4g} Hz")
    return n, notes


def binned_recording(rec: Recording, n: int) -> Recording:
    """The recording with every frame series averaged over runs of ``n`` frames (itself for n == 1)."""
    if n == 1:
        return rec
    if rec.n_frames < n:
        raise InvalidTraces(rec.source or None, f"session {rec.session!r}: {rec.n_frames} frames cannot be binned by {n}")
    return replace(rec, traces=bin_frames(rec.traces, n), fs=rec.fs / n,
                   extra_traces={k: bin_frames(v, n) for k, v in rec.extra_traces.items()})


def _fit_ranges(rec: Recording, config: PreprocessConfig) -> Ranges:
    if config.fit_on == "train":
        return split_blocks(rec.n_frames, config.block_len, config.split)["train"]
    return [(0, rec.n_frames)]


def _rows(a: Any, ranges: Ranges, cols: np.ndarray) -> np.ndarray:
    """float32 copy of only the fitted rows and selected columns."""
    return np.concatenate([np.asarray(a[lo:hi, cols], dtype=np.float32) for lo, hi in ranges])


def _selected(rec: Recording, config: PreprocessConfig, notes: list[str]) -> np.ndarray:
    if not config.iscell_only:
        return np.arange(rec.n_rois)
    column = next((c for c in CELL_COLUMNS if c in rec.roi_info), None)
    if column is None:
        notes.append("iscell_only: the recording has no 'iscell' (suite2p) or 'accepted' (CaImAn) column; all ROIs kept")
        return np.arange(rec.n_rois)
    keep = np.flatnonzero(np.asarray(rec.roi_info[column], dtype=float) > 0.5)
    notes.append(f"iscell_only: kept the {len(keep)} of {rec.n_rois} ROIs marked '{column}'")
    return keep


def fit_preprocess(rec: Recording, config: PreprocessConfig | None = None) -> PreprocessState:
    """Fit the normalisation (and PCA) of one recording on the rows ``config.fit_on`` names."""
    config = config or PreprocessConfig()
    n_bin, notes = bin_factor(rec.fs, config)
    input_fs, rec = rec.fs, binned_recording(rec, n_bin)
    keep = _selected(rec, config, notes)
    coef = config.neuropil_coef
    fneu = neuropil(rec)
    if coef is not None and fneu is None:
        notes.append("neuropil_coef set but the recording has no 'Fneu' traces; not subtracted")
        coef = None
    elif coef is None:
        notes.append("neuropil not subtracted (set neuropil_coef, e.g. 0.7, to subtract Fneu)" if fneu is not None
                     else "no Fneu: neuropil not subtracted")
    ranges = _fit_ranges(rec, config)
    reasons: dict[int, str] = {}
    median = None
    if not config.dff and sum(hi - lo for lo, hi in ranges) * len(keep) * 4 > STREAM_BYTES:
        mean, std = _streamed_stats(rec, ranges, keep, fneu if coef is not None else None, coef)
    else:
        mean, std, median = _stats(rec, ranges, keep, fneu if coef is not None else None, coef, config.dff, reasons)
    for i in np.flatnonzero(std <= 1e-7 * (1.0 + np.abs(mean))):
        reasons.setdefault(int(i), "zero variance")
    if not config.zscore:
        mean, std = np.zeros(len(keep)), np.ones(len(keep))

    good = np.setdiff1d(np.arange(len(keep)), list(reasons))
    ids = rec.roi_ids
    if len(good) == 0:
        raise InvalidTraces(rec.source or None, f"session {rec.session!r}: no ROI left after preprocessing "
                            f"({len(reasons)} dropped: {sorted(set(reasons.values()))})")
    state = PreprocessState(
        config=config, fs=float(rec.fs), input_ids=ids.tolist(), keep=keep[good],
        unit_ids=ids[keep[good]].tolist(), mean=mean[good], std=std[good],
        median=None if median is None else median[good], neuropil_coef=coef,
        dropped=[str(ids[keep[i]]) for i in sorted(reasons)],
        drop_reasons={str(ids[keep[i]]): r for i, r in sorted(reasons.items())}, notes=notes,
        bin=n_bin, input_fs=float(input_fs),
    )
    if state.dropped:
        notes.append(f"dropped {len(state.dropped)} ROIs: {', '.join(state.dropped[:10])}"
                     + (" ..." if len(state.dropped) > 10 else ""))
    if config.pca_k is not None:
        _fit_pca(state, rec, ranges)
    return state


def _nonfinite(rec: Recording) -> InvalidTraces:
    return InvalidTraces(rec.source or None, f"session {rec.session!r}: traces contain NaN or Inf values")


def _stats(rec: Recording, ranges: Ranges, keep: np.ndarray, fneu: Any, coef: float | None, dff: bool,
           reasons: dict[int, str]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Mean, std (and the dF/F median) of the fitted rows, from one in-memory copy of them."""
    x = _rows(rec.traces, ranges, keep)
    if coef is not None:
        x -= np.float32(coef) * _rows(fneu, ranges, keep)
    if not np.isfinite(x).all():
        raise _nonfinite(rec)
    median = None
    if dff:
        median = np.median(x, axis=0).astype(np.float64)
        reasons.update({int(i): "dF/F baseline (median) <= 0" for i in np.flatnonzero(median <= 0)})
        safe = np.where(median > 0, median, 1.0).astype(np.float32)
        x -= safe
        x /= safe
    return x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64), median


def _row_blocks(lo: int, hi: int, width: int, multiple: int = 1):
    """[lo, hi) in blocks of about STREAM_BLOCK_BYTES of float32 rows (a multiple of ``multiple`` rows)."""
    step = max(multiple, STREAM_BLOCK_BYTES // max(1, 4 * width) // multiple * multiple)
    for a in range(lo, hi, step):
        yield a, min(a + step, hi)


def _streamed_stats(rec: Recording, ranges: Ranges, keep: np.ndarray, fneu: Any,
                    coef: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the fitted rows read block by block (a whole-brain memmap is never copied
    whole): per-block float64 moments merged exactly (Chan et al.'s pairwise update)."""
    n, mean, m2 = 0, np.zeros(len(keep)), np.zeros(len(keep))
    for lo, hi in ranges:
        for a, b in _row_blocks(lo, hi, len(keep)):
            x = np.asarray(rec.traces[a:b, keep], dtype=np.float32)
            if coef is not None:
                x -= np.float32(coef) * np.asarray(fneu[a:b, keep], dtype=np.float32)
            if not np.isfinite(x).all():
                raise _nonfinite(rec)
            k, mu = b - a, x.mean(axis=0, dtype=np.float64)
            block_m2 = ((x - mu) ** 2).sum(axis=0, dtype=np.float64)
            delta, total = mu - mean, n + k
            mean, m2, n = mean + delta * k / total, m2 + block_m2 + delta**2 * n * k / total, total
    return mean, np.sqrt(m2 / max(n, 1))


def _fit_pca(state: PreprocessState, rec: Recording, ranges: Ranges) -> None:
    """PCA on the normalised, filtered fitted rows; each fitted range is filtered on its own so
    nothing outside it (e.g. the test period) enters the fit."""
    fneu = neuropil(rec) if state.neuropil_coef is not None else None
    z = np.concatenate([
        state.project(state.normalise(rec.traces[lo:hi], None if fneu is None else fneu[lo:hi]))
        for lo, hi in ranges
    ])
    k = min(int(state.config.pca_k), *z.shape)
    if k < state.config.pca_k:
        state.notes.append(f"pca_k={state.config.pca_k} reduced to {k} (frames/ROIs available)")
    pca = PCA(n_components=k, svd_solver="full").fit(z)  # exact, as the reference
    state.pca_mean = pca.mean_.astype(np.float32)
    state.pca_components = pca.components_.astype(np.float32)
    state.unit_ids = [f"pc{i}" for i in range(k)]


@dataclass
class SessionData:
    """One preprocessed session: model-space values and its train/val/test ranges."""

    session: str
    dataset: str
    unit_ids: list[str]
    values: np.ndarray
    state: PreprocessState
    ranges: dict[str, Ranges]
    source: str = ""

    def windows(self, split: str, length: int, stride: int = 1) -> WindowDataset:
        """Lazy windows of ``length`` frames in ``split``; raises if the split has none."""
        if split not in SPLITS:
            raise PocoError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        ds = WindowDataset(self.values, self.ranges[split], length, stride)
        if len(ds) == 0:
            longest = max((b - a for a, b in self.ranges[split]), default=0)
            raise InvalidTraces(self.source or None, (
                f"session {self.session!r} has no {split} window of {length} frames (a range needs "
                f"{length + 1}): its longest {split} range is {longest} frames of {len(self.values)} (block_len "
                f"{self.state.config.block_len}, split {self.state.config.split}); use a shorter "
                "context/horizon, a longer block_len or a longer recording"))
        return ds


@dataclass
class PreparedData:
    sessions: list[SessionData]
    config: PreprocessConfig


def model_values(state: PreprocessState, rec: Recording, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """Model-space values of model frames [lo, hi) of a recording (raw frames lo*bin .. hi*bin).

    Above STREAM_BYTES (a whole-brain recording) and without a temporal filter (every other step
    works row by row) the values are written block by block to a scratch memmap, so the
    recording is never held in memory whole; training then gathers its windows from that file."""
    b, fneu = state.bin, neuropil(rec) if state.neuropil_coef is not None else None
    hi = rec.n_frames // b if hi is None else hi
    width = len(state.unit_ids)
    if state.config.filter != "none" or (hi - lo) * width * 4 <= STREAM_BYTES:
        rows = slice(lo * b, hi * b)
        return state.apply(rec.traces[rows], None if fneu is None else fneu[rows])
    out = scratch_memmap((hi - lo, width))
    for a, c in _row_blocks(lo * b, hi * b, state.n_input, b):
        out[a // b - lo:c // b - lo] = state.apply(rec.traces[a:c], None if fneu is None else fneu[a:c])
    out.flush()
    return out


def scratch_memmap(shape: tuple[int, int]) -> np.ndarray:
    """A float32 (T, N) array backed by an unlinked file in ``$POCO_SCRATCH_DIR`` (default: the
    system temp dir): it lives as long as the array does and leaves nothing behind."""
    fd, path = tempfile.mkstemp(prefix="poco-values-", suffix=".f32", dir=os.environ.get("POCO_SCRATCH_DIR"))
    try:
        os.ftruncate(fd, int(np.prod(shape)) * 4)
        arr = np.memmap(path, dtype=np.float32, mode="r+", shape=shape)
    finally:
        os.close(fd)
        os.unlink(path)
    return arr


def _unique_names(recs: Sequence[Recording]) -> list[str]:
    """Session names as given; a repeated name gets ``_2``, ``_3``... in input order."""
    seen: set[str] = set()
    out = []
    for rec in recs:
        name, k = rec.session, 1
        while name in seen:
            k += 1
            name = f"{rec.session}_{k}"
        seen.add(name)
        out.append(name)
    return out


def prepare(recs: Recording | Sequence[Recording], config: PreprocessConfig | None = None,
            context: int | None = None, horizon: int | None = None) -> PreparedData:
    """Fit and apply preprocessing per session and split it. With ``context`` and ``horizon``,
    also check every session has a window of context + horizon frames in every split."""
    config = config or PreprocessConfig()
    recs = [recs] if isinstance(recs, Recording) else list(recs)
    if not recs:
        raise PocoError("no recordings to prepare")
    sessions = []
    for rec, name in zip(recs, _unique_names(recs)):
        state = fit_preprocess(rec, config)
        values = model_values(state, rec)
        sd = SessionData(
            session=name, dataset=rec.dataset, unit_ids=list(state.unit_ids), values=values,
            state=state, ranges=split_blocks(len(values), config.block_len, config.split), source=rec.source,
        )
        if context is not None and horizon is not None:
            for split in SPLITS:
                sd.windows(split, context + horizon)
        sessions.append(sd)
    return PreparedData(sessions=sessions, config=config)
