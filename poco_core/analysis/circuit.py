"""Circuit inference on a Recording: fit a data-constrained RNN (CURBD, p = 1; PINning, p < 1) and
decompose each region's input into currents from every other region (shared/CIRCUIT_SPEC.md).

``fit_circuit(recording, p=..., **config)`` -> :class:`CircuitFit`; ``circuit_events`` is the same
fit as a stream of event dicts (the CLI and the GUI's background job). What the result may claim:
the fit is the *free-run* pVar (J frozen); J is one of many matrices that reproduce the data, so only
the total recurrent current J r is expected to match a generating network, never J itself or the
per-region split (see ``CAVEATS``).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from poco_core.base.errors import CorruptFile, PocoError
from poco_core.base.events import CancelLike, Event
from poco_core.data.recording import Recording
from poco_core.models.circuit_rnn import (
    CircuitConfig,
    FrozenInput,
    dt_factor,
    estimate_cost,
    fit_rnn,
    pvar_per_neuron,
)

FORMAT = "poco-circuit"
FORMAT_VERSION = 1
EXTERNAL = "external"
PERCENTILE = 99.9
CLIP = 0.999
DEFAULT_MAX_BYTES = 8 * 2**30
CAVEATS = (
    ("J is one of many weight matrices that reproduce this recording: it is not the true connectivity, "
     "and the split of a region's input between source regions is not identifiable; only the total "
     "recurrent current is constrained."),
    "Unrecorded drivers (other areas, stimuli, neuromodulators) are absorbed into recurrent currents.",
    ("The online pVar during training flatters (J is corrected at every frame); the fit shown is the "
     "free-run pVar with J frozen."),
    "As a forecaster the fitted network is expected to do worse than repeating the last frame.",
)


@dataclass
class DataPrep:
    """How traces become targets d in phi's range: standardise, optional low-pass, scale, clip."""

    standardize: Literal["zscore", "none"] = "zscore"
    lowpass_hz: float | None = None
    scale: Literal["percentile", "max", "minmax"] = "percentile"
    max_frames: int | None = None


def prepare_targets(traces: np.ndarray, fs: float, prep: DataPrep, phi: str) -> tuple[np.ndarray, dict[str, float]]:
    """(T, N) targets and the scaling kept for inversion (spec section 4).

    Rates/tanh: d = clip(X / s, +-0.999), s the 99.9th percentile of |X| ("max": the reference's
    max X). Logistic/current targets need d in [0, 1]: min-max scaling into [0.001, 0.999]."""
    x = np.asarray(traces[: prep.max_frames] if prep.max_frames else traces, dtype=np.float64)
    mean = x.mean(axis=0) if prep.standardize == "zscore" else np.zeros(x.shape[1])
    std = x.std(axis=0) if prep.standardize == "zscore" else np.ones(x.shape[1])
    x = (x - mean) / np.where(std > 0, std, 1.0)
    if prep.lowpass_hz:
        from scipy.signal import butter

        from poco_core.data.filters import zero_phase

        if not 0 < prep.lowpass_hz < fs / 2:
            raise PocoError(f"low-pass cut-off {prep.lowpass_hz} Hz must be below the Nyquist frequency {fs / 2} Hz")
        x = zero_phase(x, butter(2, prep.lowpass_hz, fs=fs, output="sos"))
    if phi == "logistic" or prep.scale == "minmax":
        lo, hi = float(x.min()), float(x.max())
        s = hi - lo if hi > lo else 1.0
        return np.clip((x - lo) / s, 1 - CLIP, CLIP), {"offset": lo, "scale": s}
    s = float(np.percentile(np.abs(x), PERCENTILE) if prep.scale == "percentile" else x.max())
    s = s if s > 0 else 1.0
    return np.clip(x / s, -CLIP, CLIP), {"offset": 0.0, "scale": s}


EMBEDDING_CLUSTER = "embedding_cluster"  # roi_info column: a POCO embedding analysis's cluster per ROI


def cluster_names(clusters: np.ndarray) -> np.ndarray:
    """Group names for embedding cluster numbers: "cluster k"; HDBSCAN's noise (-1) and ROIs the
    analysis did not include (missing, NaN) are "unclustered"."""
    c = np.asarray(clusters, dtype=float)
    return np.array(["unclustered" if not np.isfinite(v) or v < 0 else f"cluster {int(v)}" for v in c])


def embedding_groups(path: str | Path, rec: Recording) -> np.ndarray:
    """Each ROI's embedding cluster (as ``cluster_names``) from the table ``poco embed --out`` writes,
    matched by session and ROI id (a one-session table matches by ROI id alone)."""
    from poco_core.analysis.embedding import load_clusters

    table = load_clusters(path)
    keep = table["session"] == rec.session
    if not keep.any() and len(set(table["session"].tolist())) == 1:
        keep[:] = True
    by_id = dict(zip(table["roi_id"][keep].tolist(), table["cluster"][keep].tolist()))
    if not set(by_id) & set(rec.roi_ids.tolist()):
        raise PocoError(f"{path}: no ROI of session {rec.session!r} is in this embedding table")
    return cluster_names(np.array([by_id.get(r, np.nan) for r in rec.roi_ids.tolist()], dtype=float))


def region_labels(rec: Recording, regions: np.ndarray | None = None, n_clusters: int = 4, seed: int = 0) -> tuple[np.ndarray, str]:
    """Per-ROI group labels and where they came from: given, the recording's regions, its first
    assembly (Triplett), its embedding clusters (``roi_info["embedding_cluster"]``, which the napari
    dock copies from the Embeddings dock), else k-means clusters of the traces' correlation profiles."""
    if regions is not None:
        labels = np.asarray(regions).astype(str)
        if labels.shape != (rec.n_rois,):
            raise PocoError(f"{len(labels)} region labels for {rec.n_rois} ROIs")
        return labels, "given"
    if rec.regions is not None:
        return rec.regions, "recording regions"
    if "assemblies" in rec.roi_info:
        first = [str(a).split(";")[0] for a in rec.roi_info["assemblies"]]
        return np.array([f"assembly {a}" if a else "no assembly" for a in first]), "first assembly"
    if EMBEDDING_CLUSTER in rec.roi_info:
        return cluster_names(rec.roi_info[EMBEDDING_CLUSTER]), "embedding clusters"
    from sklearn.cluster import KMeans

    x = np.asarray(rec.traces, dtype=np.float64)
    corr = np.nan_to_num(np.corrcoef(x.T))
    k = max(1, min(n_clusters, rec.n_rois // 2))
    labels = KMeans(k, n_init=4, random_state=seed).fit_predict(corr)
    return np.array([f"cluster {c}" for c in labels]), "k-means clusters of trace correlations"


@dataclass
class CircuitFit:
    """A fitted circuit. Arrays are in model units (scaled targets): J (N, N), data/rates/inputs (T, N)."""

    J: np.ndarray
    J0: np.ndarray
    plastic: np.ndarray
    data: np.ndarray
    rates: np.ndarray
    inputs: np.ndarray
    roi_ids: np.ndarray
    regions: np.ndarray
    params: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    pvar_per_neuron: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.pvar_per_neuron is None:
            self.pvar_per_neuron = pvar_per_neuron(self.data, self.rates)

    @property
    def pvar_free(self) -> float:
        """Free-run fit (J frozen): 1 - sum (d - r)^2 / (N T var d)."""
        return float(1 - ((self.data - self.rates) ** 2).sum() / (self.data.size * self.data.var()))

    @property
    def pvar_online(self) -> list[float]:
        return [h["pvar_online"] for h in self.history]

    @property
    def chi2(self) -> list[float]:
        return [h["chi2"] for h in self.history]

    @property
    def region_names(self) -> list[str]:
        return list(dict.fromkeys(self.regions.tolist()))

    def order(self) -> np.ndarray:
        """Units sorted by region (first-seen order), then by the time of their peak in the data."""
        rank = {r: i for i, r in enumerate(self.region_names)}
        peak = self.data.argmax(axis=0)
        return np.lexsort((peak, [rank[r] for r in self.regions]))

    def currents(self, kind: Literal["all", "excitatory", "inhibitory"] = "all") -> dict[tuple[str, str], np.ndarray]:
        """{(source, target): (T, |target|)} with C_ab(t) = J[a, b] r_b(t) from the free-run rates,
        plus ("external", target): the frozen input h (with kind "all", the parts sum to z)."""
        if kind not in ("all", "excitatory", "inhibitory"):
            raise PocoError(f"current kind must be all, excitatory or inhibitory, got {kind!r}")
        j = self.J if kind == "all" else np.where(self.J > 0, self.J, 0) if kind == "excitatory" else np.where(self.J < 0, self.J, 0)
        out = {}
        for tgt in self.region_names:
            a = self.regions == tgt
            for src in self.region_names:
                b = self.regions == src
                out[(src, tgt)] = self.rates[:, b] @ j[np.ix_(a, b)].T
            if kind == "all":
                out[(EXTERNAL, tgt)] = self.inputs[:, a]
        return out

    def current_matrix(self, stat: Literal["rms", "mean"] = "rms", kind: str = "all") -> tuple[list[str], list[str], np.ndarray]:
        """(targets, sources incl. "external" for kind "all", matrix rows target x columns source)."""
        cur = self.currents(kind)
        targets = self.region_names
        sources = targets + ([EXTERNAL] if kind == "all" else [])
        fn = (lambda c: float(np.sqrt(np.mean(c ** 2)))) if stat == "rms" else (lambda c: float(np.mean(c)))
        return targets, sources, np.array([[fn(cur[(s, t)]) for s in sources] for t in targets])

    def current_summary(self, top: int | None = None) -> list[dict[str, Any]]:
        """Source -> target pairs by rms current, strongest first."""
        targets, sources, m = self.current_matrix("rms")
        _, _, mean = self.current_matrix("mean")
        rows = [{"source": s, "target": t, "rms": m[i, j], "mean": mean[i, j]}
                for i, t in enumerate(targets) for j, s in enumerate(sources)]
        rows.sort(key=lambda r: -r["rms"])
        return rows[:top] if top else rows

    def block_mean(self, which: Literal["J", "dJ"] = "J") -> tuple[list[str], np.ndarray]:
        """(regions, M x M) mean weight of each target-region x source-region block of J (or J - J0)."""
        w = self.J if which == "J" else self.J - self.J0
        names = self.region_names
        return names, np.array([[w[np.ix_(self.regions == t, self.regions == s)].mean() for s in names] for t in names])

    def export_csv(self, path: str | Path) -> list[Path]:
        """Two tables for a spreadsheet: ``path`` (one row per ROI: id, group, free-run pVar, plastic)
        and ``<stem>_currents.csv`` (source, target, rms, mean), written atomically."""
        import csv

        from poco_core.base.outputs import atomic_path

        path = Path(path)
        currents = path.with_name(f"{path.stem}_currents.csv")
        plastic = np.zeros(len(self.roi_ids), dtype=bool)
        plastic[self.plastic] = True
        tables = {path: (["roi_id", "group", "pvar_free", "plastic"],
                         zip(self.roi_ids.tolist(), self.regions.tolist(), self.pvar_per_neuron.tolist(), plastic.tolist())),
                  currents: (["source", "target", "rms", "mean"],
                             ((r["source"], r["target"], r["rms"], r["mean"]) for r in self.current_summary()))}
        for target, (header, rows) in tables.items():
            with atomic_path(target) as tmp, open(tmp, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(header)
                writer.writerows(rows)
        return list(tables)

    def learned_change(self) -> float:
        """sum |J - J0| / sum |J0| (PINning's measure of how much training changed J)."""
        return float(np.abs(self.J - self.J0).sum() / np.abs(self.J0).sum())

    def summary(self) -> dict[str, Any]:
        return {"pvar": self.pvar_free, "pvar_online_last": self.pvar_online[-1] if self.history else None,
                "n_units": int(self.J.shape[0]), "n_frames": int(self.data.shape[0]),
                "plastic_fraction": self.params["config"]["plastic_fraction"], "runs": len(self.history),
                "regions": self.region_names, "region_source": self.params.get("region_source", ""),
                "median_pvar_per_neuron": float(np.nanmedian(self.pvar_per_neuron)),
                "learned_change": self.learned_change(), "strongest_currents": self.current_summary(top=5),
                "caveats": list(CAVEATS)}

    # -- files -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write an HDF5 file atomically (temp file in the same folder, then os.replace)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            with h5py.File(tmp, "w") as h5:
                h5.attrs["format"], h5.attrs["format_version"] = FORMAT, FORMAT_VERSION
                h5.attrs["params"] = json.dumps(self.params)
                h5.attrs["history"] = json.dumps(self.history)
                h5.attrs["pvar_free"] = self.pvar_free
                for name in ("J", "J0", "plastic", "data", "rates", "inputs", "pvar_per_neuron"):
                    h5.create_dataset(name, data=getattr(self, name), compression="gzip", compression_opts=1)
                for name in ("roi_ids", "regions"):
                    h5.create_dataset(name, data=getattr(self, name).astype("S"))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> CircuitFit:
        path = Path(path)
        try:
            with h5py.File(path, "r") as h5:
                if h5.attrs.get("format") != FORMAT:
                    raise CorruptFile(str(path), f"not a circuit fit (format {h5.attrs.get('format')!r})")
                arrays = {k: h5[k][()] for k in ("J", "J0", "plastic", "data", "rates", "inputs", "pvar_per_neuron")}
                names = {k: h5[k][()].astype(str) for k in ("roi_ids", "regions")}
                return cls(**arrays, **names, params=json.loads(h5.attrs["params"]), history=json.loads(h5.attrs["history"]))
        except OSError as exc:
            raise CorruptFile(str(path), f"not a readable HDF5 circuit file ({exc})") from exc


def _check_output(out: str | Path | None, rec: Recording) -> None:
    """Never write over a user's input: an existing output must be an earlier circuit fit."""
    if out is None:
        return
    out = Path(out)
    if out.is_dir():
        raise PocoError(f"{out}: is a folder; give a file name such as circuit.h5")
    if rec.source and out.resolve() == Path(rec.source).resolve():
        raise PocoError(f"{out}: refusing to overwrite the input recording")
    if out.exists():
        try:
            with h5py.File(out, "r") as h5:
                ours = h5.attrs.get("format") == FORMAT
        except OSError:
            ours = False
        if not ours:
            raise PocoError(f"{out}: exists and is not a circuit fit; refusing to overwrite it")


def circuit_events(recording: Recording, config: CircuitConfig | None = None, *, prep: DataPrep | None = None,
                   regions: np.ndarray | None = None, groups: str | Path | None = None,
                   out: str | Path | None = None, checkpoint: str | Path | None = None,
                   resume: str | Path | None = None, max_bytes: float = DEFAULT_MAX_BYTES,
                   cancel: CancelLike | None = None) -> Iterator[Event]:
    """The fit as events: ``start`` (cost estimate), ``stage``, ``step`` per run, ``validation`` (free-run
    pVar), ``checkpoint``, ``done`` (summary, path). Returns the CircuitFit. A cancelled fit ends with
    ``done`` and ``cancelled=True``; the last checkpoint (if any) is kept for ``resume``. ``groups``: an
    embedding table (``poco embed --out``) whose clusters are the groups, instead of ``regions``."""
    from poco_core.base.errors import Cancelled
    from poco_core.training.checkpoint import load_checkpoint, save_checkpoint

    config = config or CircuitConfig()
    if config.compat != "none":
        raise PocoError("compat='curbd2020' reproduces the reference for parity tests (fit_rnn); fit circuits in the default mode")
    prep = prep or DataPrep()
    _check_output(out, recording)
    t0 = time.monotonic()
    yield {"type": "stage", "stage": "prepare", "session": recording.session}
    d, scaling = prepare_targets(recording.traces, recording.fs, prep, config.phi)
    if groups is not None:
        if regions is not None:
            raise PocoError("give region labels or an embedding table of groups, not both")
        labels, region_source = embedding_groups(groups, recording), f"embedding clusters ({Path(groups).name})"
    else:
        labels, region_source = region_labels(recording, regions, seed=config.seed)
    t_frames, n = d.shape
    if t_frames < 3:
        raise PocoError(f"{recording.source or recording.session}: {t_frames} frames are too few for a circuit fit")
    dt_data = 1.0 / recording.fs
    cost = estimate_cost(n, t_frames, dt_data, config)
    if cost["bytes"] > max_bytes:
        raise PocoError(f"a fit of {n} units x {t_frames} frames needs about {cost['bytes'] / 2**30:.1f} GiB, over "
                        f"the {max_bytes / 2**30:.1f} GiB budget: subsample neurons or frames")
    f = dt_factor(dt_data, config)
    warn = [] if dt_data / f <= 0.2 * config.tau_s else [f"dtRNN/tau = {dt_data / f / config.tau_s:.2f} > 0.2: inaccurate Euler steps"]
    if recording.provenance.get("fs_placeholder"):
        warn.append("the recording states no sampling rate: tau is in units of the 1 Hz placeholder frames")
    yield {"type": "start", "kind": "circuit", "total_steps": config.n_train, "start_step": 0,
           "sessions": [recording.session], "device": config.device, "n_units": n, "n_frames": t_frames,
           "dt_factor": f, "estimate": cost, "warnings": warn}
    state = None
    if resume is not None:
        ck = load_checkpoint(resume)
        if ck.get("kind") != "circuit" or ck.get("roi_ids") != recording.roi_ids.tolist():
            raise PocoError(f"{resume}: not a circuit checkpoint of this recording's ROIs")
        state = ck["state"]

    def save_state(st) -> None:
        if checkpoint is not None:
            save_checkpoint(checkpoint, {"kind": "circuit", "state": st.to_dict(), "config": config.to_dict(),
                                         "roi_ids": recording.roi_ids.tolist()})

    yield {"type": "stage", "stage": "train", "session": recording.session}
    gen = fit_rnn(d, dt_data, config, state=state, cancel=cancel, on_checkpoint=save_state)
    try:
        while True:
            ev = next(gen)
            yield ev
            if ev["type"] == "validation" and checkpoint is not None and ev["step"] % config.free_every == 0 \
                    and ev["step"] < config.n_train:
                yield {"type": "checkpoint", "step": ev["step"], "path": str(checkpoint)}
    except StopIteration as stop:
        st, free = stop.value
    except Cancelled:
        yield {"type": "done", "cancelled": True, "checkpoint": str(checkpoint) if checkpoint else None,
               "time_s": time.monotonic() - t0}
        return None
    save_state(st)
    yield {"type": "stage", "stage": "currents", "session": recording.session}
    inputs = FrozenInput(n, t_frames, f, dt_data / f, config, "cpu", free.rates.dtype).frames()
    fit = CircuitFit(
        J=st.J.cpu().numpy(), J0=st.J0.cpu().numpy(), plastic=st.plastic.cpu().numpy(), data=d,
        rates=free.rates.cpu().numpy(), inputs=inputs, roi_ids=recording.roi_ids, regions=labels,
        params={"config": config.to_dict(), "prep": vars(prep), "dt_data": dt_data, "dt_factor": f,
                "scaling": scaling, "session": recording.session, "source": recording.source,
                "region_source": region_source, "fs": recording.fs},
        history=st.history,
    )
    path = fit.save(out) if out is not None else None
    yield {"type": "done", "cancelled": False, "checkpoint": str(path) if path else None, "path": str(path) if path else None,
           "time_s": time.monotonic() - t0, "pvar": fit.pvar_free, "summary": fit.summary(),
           "best_step": st.run}
    return fit


def fit_circuit(recording: Recording, p: float | None = None, *, config: CircuitConfig | None = None,
                prep: DataPrep | None = None, regions: np.ndarray | None = None, groups: str | Path | None = None,
                on_event: Callable[[Event], None] | None = None, cancel: CancelLike | None = None,
                out: str | Path | None = None, checkpoint: str | Path | None = None,
                resume: str | Path | None = None, **overrides: Any) -> CircuitFit | None:
    """Fit a circuit: ``p`` = plastic fraction (1 = CURBD, < 1 = PINning), other CircuitConfig fields
    as keywords; ``regions`` labels or ``groups`` (an embedding cluster table) override the recording's
    own groups (regions, assemblies, embedding clusters, else k-means). Returns None when cancelled."""
    base = (config or CircuitConfig()).to_dict()
    if p is not None:
        overrides["plastic_fraction"] = p
    config = CircuitConfig.from_dict({**base, **overrides}) if set(overrides) <= set(base) else None
    if config is None:
        raise PocoError(f"unknown circuit setting(s) {sorted(set(overrides) - set(base))}")
    gen = circuit_events(recording, config, prep=prep, regions=regions, groups=groups, out=out, checkpoint=checkpoint,
                         resume=resume, cancel=cancel)
    try:
        while True:
            ev = next(gen)
            if on_event is not None:
                on_event(ev)
    except StopIteration as stop:
        return stop.value


@dataclass
class SeedEnsemble:
    """Current matrices of fits that differ only in their seed (J0, plastic set, input): rms mean and sd
    per target x source pair, and which pairs are stable (signed mean current keeps its sign in every
    fit and is more than two sd from 0). J is one of many; a pair that flips with the seed means nothing."""

    targets: list[str]
    sources: list[str]
    rms_mean: np.ndarray
    rms_sd: np.ndarray
    mean_current: np.ndarray  # (K, targets, sources) signed mean current per fit
    stable: np.ndarray  # (targets, sources) bool
    pvars: list[float]


def seed_ensemble(fits: list[CircuitFit]) -> SeedEnsemble:
    """Compare the current matrices of fits of one recording with different seeds (same groups)."""
    if len(fits) < 2:
        raise PocoError("a seed ensemble needs at least two fits")
    if any(f.regions.tolist() != fits[0].regions.tolist() for f in fits):
        raise PocoError("the fits do not group the same ROIs the same way")
    targets, sources, _ = fits[0].current_matrix("rms")
    rms = np.stack([f.current_matrix("rms")[2] for f in fits])
    mean = np.stack([f.current_matrix("mean")[2] for f in fits])
    mu, sd = mean.mean(0), mean.std(0)
    stable = (np.all(np.sign(mean) == np.sign(mu), axis=0)) & (np.abs(mu) > 2 * sd)
    return SeedEnsemble(targets, sources, rms.mean(0), rms.std(0), mean, stable, [f.pvar_free for f in fits])


def load_circuit(path: str | Path) -> CircuitFit:
    return CircuitFit.load(path)


def circuit_job_events(spec: Any, cancel: CancelLike | None = None) -> Iterator[Event]:
    """A background job's stream (``poco_core.training.jobs.run_job(..., events=circuit_job_events)``):
    ``spec.model_config`` holds CircuitConfig fields, ``spec.preprocess`` DataPrep fields, and the
    result is written to ``spec.checkpoint``."""
    from poco_core.data.io import load_recording

    rec = load_recording(spec.recordings[0].path, **spec.recordings[0].options)
    config = CircuitConfig.from_dict({**spec.model_config, "device": spec.device})
    return circuit_events(rec, config, prep=DataPrep(**spec.preprocess), out=spec.checkpoint, cancel=cancel)
