"""Unit-embedding analysis: do POCO's learned unit embeddings group neurons by brain region?

POCO is never told the regions, so if its per-unit embeddings cluster by region the model has
found region-specific dynamics on its own (paper, appendix C.4). This module works on plain
arrays (one ``SessionUnits`` per session) so the CLI, the napari dock and notebooks share it:
UMAP to 2-D for display, k-means / HDBSCAN clusters, region similarity
(``poco_core.analysis.region_similarity``), and how well clusters and a classifier recover the regions
compared with shuffled labels. Heavy imports (umap, sklearn, torch) happen inside functions.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from poco_core.analysis.region_similarity import (
    normalise_rows,
    region_means,
    region_similarity,
    roi_scores,
    unit_vectors,
)
from poco_core.base.errors import Cancelled, PocoError
from poco_core.base.events import CancelLike, Event, is_cancelled
from poco_core.data.recording import Recording
from poco_core.training.defaults import CONSTANT_FILM, EMBEDDING_ANALYSIS_HOW

METHODS = ("kmeans", "hdbscan")
COACTIVITY_COMPONENTS = 8  # principal components whose loadings describe a unit's co-activity
NOISE = -1  # HDBSCAN's label for units in no cluster
UNUSED_EMBEDDINGS = ("these unit embeddings are still their random initialisation, so clusters and region scores of "
                     f"them mean nothing: {CONSTANT_FILM}. For embeddings to analyse, train with {EMBEDDING_ANALYSIS_HOW}")
NO_INITIAL_ROWS = ("this checkpoint does not keep its unit embeddings' initial random draw (written before they were "
                   "kept), so the rows are analysed as stored, the draw included; after a short training it can hide "
                   "what was learned (docs/results.md 7.3)")
Progress = Callable[[Event], None]


@dataclass
class SessionUnits:
    """One session's unit embeddings (N, d) with their unit ids and, when known, regions."""

    session: str
    unit_ids: np.ndarray
    embedding: np.ndarray
    regions: np.ndarray | None = None
    trace_stats: np.ndarray | None = None  # (N, F) statistics of each unit's own trace (``trace_features``)
    coactivity: np.ndarray | None = None  # (N, K) loadings on the session's principal components (``coactivity_features``)
    learned: bool = False  # the rows less their initial random draw (what training put there), not as stored
    source: str = "model"  # "model", or "population stage": the rows a run kept at its MLP still learned


@dataclass
class EmbeddingAnalysis:
    """Everything the dock, the CLI and the exports show; per-ROI arrays are aligned (M rows)."""

    session: np.ndarray  # (M,) str
    roi_id: np.ndarray  # (M,) str
    region: np.ndarray | None  # (M,) str, or None when no recording gave regions
    embedding: np.ndarray  # (M, d)
    umap: np.ndarray  # (M, 2)
    cluster: np.ndarray  # (M,) int, NOISE for HDBSCAN outliers
    method: str
    metric: str
    seed: int
    silhouette: dict[int, float] = field(default_factory=dict)  # k -> score when k was chosen
    region_names: list[str] = field(default_factory=list)
    similarity: np.ndarray | None = None  # (R, R) rows min-max normalised
    similarity_raw: np.ndarray | None = None  # (R, R) mean pairwise similarity
    roi_similarity: np.ndarray | None = None  # (M, R) each ROI vs each region's mean embedding
    recovery: dict[str, Any] | None = None  # pooled over sessions; "within_session": per session, weighted
    notes: list[str] = field(default_factory=list)  # what a reader must know to trust the numbers
    rows: str = "as stored"  # which rows were analysed: "learned" (less the initial draw) or "as stored"
    source: str = "model"  # whose rows: the model's, or its "population stage" (`SessionUnits.source`)

    @property
    def n_clusters(self) -> int:
        return int(len(set(self.cluster.tolist()) - {NOISE}))

    def columns(self, with_embedding: bool = False) -> dict[str, np.ndarray]:
        """Per-ROI table (the napari `features` columns and the CSV), in a stable column order."""
        cols: dict[str, np.ndarray] = {"session": self.session, "roi_id": self.roi_id}
        if self.region is not None:
            cols["region"] = self.region
        cols.update(umap_x=self.umap[:, 0], umap_y=self.umap[:, 1], cluster=self.cluster)
        if self.roi_similarity is not None:
            for k, name in enumerate(self.region_names):
                cols[f"similarity_{name}"] = self.roi_similarity[:, k]
        if with_embedding:
            for k in range(self.embedding.shape[1]):
                cols[f"emb_{k}"] = self.embedding[:, k]
        return cols

    def summary(self) -> dict[str, Any]:
        """JSON-safe headline numbers (for `poco embed --json` and the dock's status line)."""
        return {
            "n_units": int(len(self.roi_id)),
            "sessions": sorted(set(self.session.tolist())),
            "method": self.method,
            "metric": self.metric,
            "seed": self.seed,
            "n_clusters": self.n_clusters,
            "silhouette": {str(k): v for k, v in self.silhouette.items()},
            "regions": self.region_names,
            "recovery": self.recovery,
            "rows": self.rows,
            "source": self.source,
            "notes": self.notes,
        }


def _emit(progress: Progress | None, cancel: CancelLike | None, stage: str, step: int, total: int) -> None:
    if is_cancelled(cancel):
        raise Cancelled(f"embedding analysis cancelled before {stage}")
    if progress is not None:
        progress({"type": "progress", "stage": stage, "step": step, "total": total})


def load_model(model_or_path: Any) -> Any:
    """A model as is, or the model stored in a checkpoint file."""
    if not isinstance(model_or_path, (str, Path)):
        return model_or_path
    from poco_core.training.restore import load_model as load_checkpointed_model

    return load_checkpointed_model(model_or_path)


def session_units(model: Any, recordings: Sequence[Recording] = (), sessions: Sequence[str] | None = None,
                  learned: bool = True) -> list[SessionUnits]:
    """Each model session's unit embeddings (no session embedding), with regions from `recordings`.

    A recording gives regions to the model session of the same name; units are matched by ROI id
    (preprocessing may have dropped constant ROIs; PCA components have no region). `learned`: the rows
    less their initial random draw where the model keeps it. Where the model kept is POCO's MLP (its
    forecasts ignore the rows) and its checkpoint holds the rows its population stage learned, those.
    """
    import torch

    from poco_core.data.identity import check_identity

    by_session = {rec.session: rec for rec in recordings}
    prints = getattr(getattr(model, "poco_meta", None), "fingerprints", {})
    population = population_rows(model)
    for name, rec in by_session.items():
        check_identity(rec, prints.get(name), name)
    out = []
    with torch.no_grad():
        for spec in model.sessions:
            if sessions is not None and spec.session not in sessions:
                continue
            try:
                emb = model.unit_embeddings(spec.session)
            except NotImplementedError as exc:
                raise PocoError(f"{type(model).__name__} has no unit embeddings (use a POCO model)") from exc
            stage = population.get("unit", {}).get(spec.session)
            emb = emb if stage is None else stage.to(emb)
            initial = None if not learned else (model.initial_unit_embeddings(spec.session) if stage is None
                                                else population.get("initial", {}).get(spec.session))
            if initial is not None and torch.equal(emb, initial.to(emb)):
                initial = None  # never trained: nothing learned to show, the draw is all there is (UNUSED_EMBEDDINGS)
            if initial is not None:
                emb = emb - initial.to(emb)
            ids = np.asarray(spec.unit_ids).astype(str)
            rec = by_session.get(spec.session)
            regions = _regions_of(rec, ids)
            traces = None if regions is None else _traces_of(rec, ids)
            stats = None if traces is None else trace_features(traces)
            coact = None if traces is None else coactivity_features(traces)
            out.append(SessionUnits(spec.session, ids, emb.detach().float().cpu().numpy(), regions, stats, coact,
                                    learned=initial is not None, source="model" if stage is None else "population stage"))
    if not out:
        raise PocoError(f"none of the sessions {list(sessions or [])} is in the model")
    return out


def population_rows(model: Any) -> dict[str, Any]:
    """For a model kept at its MLP, the unit rows ("unit", "initial": by session) of its population stage's
    best validation, which its checkpoint keeps (`training.loop.population_rows`); {} for any other model."""
    stage = getattr(getattr(model, "poco_meta", None), "population", None)
    return stage if stage and model.ignores_conditioning() else {}


def _regions_of(rec: Recording | None, ids: np.ndarray) -> np.ndarray | None:
    """Regions by ROI id; without regions, a recording's single assembly per ROI (Triplett et al.:
    assemblies overlap, so ROIs in none or in several get "" = unknown)."""
    if rec is None:
        return None
    labels = rec.regions
    if labels is None and "assemblies" in rec.roi_info:
        labels = np.array(["" if (a == "" or ";" in a) else f"assembly {a}" for a in np.asarray(rec.roi_info["assemblies"]).astype(str)])
    if labels is None:
        return None
    lookup = dict(zip(rec.roi_ids.tolist(), np.asarray(labels).astype(str).tolist()))
    if not all(i in lookup for i in ids.tolist()):
        return None
    return np.array([lookup[i] for i in ids.tolist()], dtype=str)


def _traces_of(rec: Recording, ids: np.ndarray) -> np.ndarray:
    col = {r: k for k, r in enumerate(rec.roi_ids.tolist())}
    return np.asarray(rec.traces[:, [col[i] for i in ids.tolist()]], dtype=np.float64)


def trace_features(traces: np.ndarray, lags: Sequence[int] = (1, 2, 4, 8, 16, 32), n_bands: int = 8) -> np.ndarray:
    """(T, N) traces -> (N, F) statistics of each unit's own dynamics: autocorrelation at ``lags``,
    the fraction of power in ``n_bands`` log-spaced frequency bands, skewness and kurtosis. A region
    classifier on these gives the ceiling of what the dynamics alone tell apart (issue 16)."""
    from scipy.stats import kurtosis, skew

    x = traces - traces.mean(0)
    x = x / np.maximum(x.std(0), 1e-12)
    t = len(x)
    acf = [np.mean(x[lag:] * x[:-lag], axis=0) for lag in lags if lag < t]
    power = np.abs(np.fft.rfft(x, axis=0)[1:]) ** 2
    edges = np.unique(np.geomspace(1, len(power), n_bands + 1).astype(int))
    bands = [power[a - 1 : b].sum(0) for a, b in zip(edges[:-1], edges[1:])]
    frac = np.array(bands) / np.maximum(power.sum(0), 1e-12)
    return np.column_stack([*acf, *frac, skew(x, axis=0), kurtosis(x, axis=0)])


def coactivity_features(traces: np.ndarray, k: int = COACTIVITY_COMPONENTS) -> np.ndarray:
    """(T, N) traces -> (N, k) each unit's loadings on its session's first ``k`` principal components
    of the z-scored traces: who fluctuates with whom. Groups defined by co-activity (Triplett et
    al.'s assemblies) differ here, not in each trace's own statistics; the loadings of one session
    are not comparable with another's, so only within-session classifiers use them."""
    from sklearn.decomposition import PCA

    x = traces - traces.mean(0)
    x = x / np.maximum(x.std(0), 1e-12)
    k = min(k, *x.shape)
    pca = PCA(n_components=k, random_state=0).fit(x)
    return (pca.components_ * np.sqrt(pca.explained_variance_)[:, None]).T


def umap_2d(x: np.ndarray, seed: int = 0, metric: str = "cosine", n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """(M, 2) UMAP layout; seeded (which makes umap-learn single-threaded, hence reproducible)."""
    if len(x) < 4:
        raise PocoError(f"UMAP needs at least 4 units, got {len(x)}")
    import umap

    reducer = umap.UMAP(
        n_components=2, n_neighbors=min(n_neighbors, len(x) - 1), min_dist=min_dist, metric=metric, random_state=seed, n_jobs=1
    )
    return np.asarray(reducer.fit_transform(np.asarray(x, dtype=np.float32)), dtype=np.float32)


def cluster_units(
    x: np.ndarray,
    method: str = "kmeans",
    n_clusters: int | None = None,
    seed: int = 0,
    k_range: tuple[int, int] = (2, 10),
    min_cluster_size: int | None = None,
    sample_size: int = 5000,
) -> tuple[np.ndarray, dict[int, float]]:
    """(labels, silhouette per tried k). k-means with k given, or the k in `k_range` of best silhouette
    (on a seeded sample of `sample_size` units, since silhouette is quadratic). HDBSCAN finds the number
    of clusters itself (`n_clusters` must be None) and labels outliers NOISE."""
    from sklearn.cluster import HDBSCAN, KMeans
    from sklearn.metrics import silhouette_score

    if method not in METHODS:
        raise PocoError(f"clustering method must be one of {METHODS}, got {method!r}")
    x = np.asarray(x, dtype=np.float64)
    if method == "hdbscan":
        if n_clusters is not None:
            raise PocoError("HDBSCAN chooses the number of clusters itself; leave the number on auto")
        size = min_cluster_size or max(5, len(x) // 100)
        return HDBSCAN(min_cluster_size=size, copy=True).fit_predict(x).astype(int), {}
    fit = lambda k: KMeans(k, n_init=4, random_state=seed).fit_predict(x).astype(int)  # noqa: E731
    if n_clusters is not None:
        if not 1 <= n_clusters <= len(x):
            raise PocoError(f"cannot make {n_clusters} clusters from {len(x)} units")
        return fit(n_clusters), {}
    fits = {k: fit(k) for k in range(k_range[0], min(k_range[1], len(x) - 1) + 1)}
    if not fits:
        raise PocoError(f"need at least 3 units to choose a number of clusters, got {len(x)}")
    n = min(sample_size, len(x))
    scores = {k: float(silhouette_score(x, labels, sample_size=n, random_state=seed)) for k, labels in fits.items()}
    return fits[max(scores, key=scores.get)], scores


def region_recovery(
    x: np.ndarray,
    regions: np.ndarray,
    clusters: np.ndarray,
    seed: int = 0,
    n_folds: int = 5,
    max_units: int = 5000,
    n_shuffles: int = 20,
) -> dict[str, float] | None:
    """How well embeddings recover regions, each against shuffled region labels.

    ARI of clusters vs regions (control: mean over `n_shuffles` shuffles), and the stratified-k-fold
    accuracy of a logistic-regression region classifier (control: the same with shuffled labels;
    `chance` is the majority-region fraction). None when fewer than 2 regions have 2+ units.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import adjusted_rand_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    regions = np.asarray(regions).astype(str)
    names, counts = np.unique(regions, return_counts=True)
    keep = np.isin(regions, names[counts >= 2])
    if (counts >= 2).sum() < 2:
        return None
    rng = np.random.default_rng(seed)
    ari = adjusted_rand_score(regions, clusters)
    ari_shuffled = np.mean([adjusted_rand_score(rng.permutation(regions), clusters) for _ in range(n_shuffles)])
    idx = np.flatnonzero(keep)
    if len(idx) > max_units:
        idx = np.sort(rng.choice(idx, max_units, replace=False))
    xs, ys = np.asarray(x, dtype=np.float64)[idx], regions[idx]
    folds = int(min(n_folds, np.unique(ys, return_counts=True)[1].min()))
    if folds < 2:
        return {"ari": float(ari), "ari_shuffled": float(ari_shuffled)}
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    acc = cross_val_score(clf, xs, ys, cv=cv).mean()
    acc_shuffled = cross_val_score(clf, xs, rng.permutation(ys), cv=cv).mean()
    return {
        "ari": float(ari),
        "ari_shuffled": float(ari_shuffled),
        "accuracy": float(acc),
        "accuracy_shuffled": float(acc_shuffled),
        "chance": float(np.unique(ys, return_counts=True)[1].max() / len(ys)),
        "folds": folds,
        "n_units": int(len(ys)),
    }


def within_session_recovery(units: Sequence[SessionUnits], seed: int = 0) -> dict[str, Any] | None:
    """The region classifier run inside each session, weighted by its labelled units, with two
    ceilings: each trace's own statistics and its co-activity (``coactivity_features``). Labels
    that name different groups in different sessions (each fish's assemblies) are only meaningful
    here; shared labels (brain regions) are also classified across sessions (``region_recovery``)."""
    rows = []
    for u in units:
        if u.regions is None:
            continue
        known = u.regions != ""
        none = np.zeros(int(known.sum()), dtype=int)
        emb = region_recovery(u.embedding[known], u.regions[known], none, seed=seed)
        if emb is None or "accuracy" not in emb:
            continue
        row = {k: emb[k] for k in ("accuracy", "accuracy_shuffled", "chance")}
        for name, feats in (("trace_stats_accuracy", u.trace_stats), ("coactivity_accuracy", u.coactivity)):
            if feats is not None:
                row[name] = region_recovery(feats[known], u.regions[known], none, seed=seed)["accuracy"]
        rows.append((emb["n_units"], row))
    if not rows:
        return None
    n = np.array([w for w, _ in rows], dtype=float)
    keys = set.intersection(*(set(r) for _, r in rows))
    out: dict[str, Any] = {k: float(np.dot(n, [r[k] for _, r in rows]) / n.sum()) for k in sorted(keys)}
    return out | {"n_units": int(n.sum()), "sessions": len(rows)}


def analyze(
    units: Sequence[SessionUnits],
    method: str = "kmeans",
    n_clusters: int | None = None,
    metric: str = "cosine",
    seed: int = 0,
    min_cluster_size: int | None = None,
    progress: Progress | None = None,
    cancel: CancelLike | None = None,
) -> EmbeddingAnalysis:
    """The full analysis on unit embeddings; emits `progress` events and honours `cancel` between stages."""
    if not units:
        raise PocoError("no sessions to analyse")
    total = 5
    _emit(progress, cancel, "umap", 0, total)
    x = np.concatenate([u.embedding for u in units]).astype(np.float32)
    layout = umap_2d(x, seed=seed, metric=metric)
    _emit(progress, cancel, "clusters", 1, total)
    clusters, silhouette = cluster_units(
        unit_vectors(x) if metric == "cosine" else x, method, n_clusters, seed, min_cluster_size=min_cluster_size
    )
    result = EmbeddingAnalysis(
        session=np.concatenate([np.full(len(u.unit_ids), u.session) for u in units]).astype(str),
        roi_id=np.concatenate([np.asarray(u.unit_ids).astype(str) for u in units]),
        region=None,
        embedding=x,
        umap=layout,
        cluster=clusters,
        method=method,
        metric=metric,
        seed=seed,
        silhouette=silhouette,
    )
    with_regions = [u for u in units if u.regions is not None]
    if with_regions:
        _emit(progress, cancel, "similarity", 2, total)
        names, raw = region_similarity([u.embedding for u in with_regions], [u.regions for u in with_regions], metric, seed=seed)
        region = np.concatenate([u.regions if u.regions is not None else np.full(len(u.unit_ids), "") for u in units]).astype(str)
        known = region != ""
        _emit(progress, cancel, "scores", 3, total)
        result.region = region
        result.region_names = names
        result.similarity_raw = raw
        result.similarity = normalise_rows(raw)
        result.roi_similarity = roi_scores(x, region_means(x[known], region[known], names, metric), metric).astype(np.float32)
        _emit(progress, cancel, "recovery", 4, total)
        result.recovery = region_recovery(x[known], region[known], clusters[known], seed=seed)
        if result.recovery is not None and all(u.trace_stats is not None for u in units):
            stats = np.concatenate([u.trace_stats for u in units])  # type: ignore[misc]
            ceiling = region_recovery(stats[known], region[known], clusters[known], seed=seed)
            if ceiling is not None and "accuracy" in ceiling:
                result.recovery["trace_stats_accuracy"] = ceiling["accuracy"]  # the dynamics' ceiling
        within = within_session_recovery(with_regions, seed=seed) if result.recovery is not None else None
        if within is not None:
            result.recovery["within_session"] = within
    _emit(progress, cancel, "done", total, total)
    return result


def analyze_model(
    model_or_path: Any, recordings: Sequence[Recording] = (), sessions: Sequence[str] | None = None,
    learned: bool = True, **options: Any
) -> EmbeddingAnalysis:
    """`analyze` on a model's (or checkpoint's) unit embeddings, with regions from `recordings`;
    `learned` (default) takes each row's initial random draw away where the model keeps it."""
    model = load_model(model_or_path)
    units = session_units(model, recordings, sessions, learned)
    result = analyze(units, **options)
    result.rows = "learned" if all(u.learned for u in units) else "as stored"
    if learned and any(u.source == "model" and model.initial_unit_embeddings(u.session) is None for u in units):
        result.notes.append(NO_INITIAL_ROWS)
    if any(u.source != "model" for u in units):
        stage = model.poco_meta.population
        result.source = "population stage"
        result.notes.append(f"the model kept is POCO's MLP, whose forecasts do not use unit embeddings; shown are the "
                            f"unit embeddings POCO learned in the same run (its population stage, best validation at "
                            f"step {stage['step']}, MSE {stage['val_mse']:.4f}), not kept for forecasting because the "
                            "MLP did as well or better")
    elif model.ignores_conditioning():
        result.notes.append(UNUSED_EMBEDDINGS)
    return result


def save_results(result: EmbeddingAnalysis, path: str | Path) -> list[Path]:
    """Write `.csv` (per-ROI table + `<stem>_region_similarity.csv`) or `.h5`/`.hdf5`; returns files written."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _save_csv(result, path)
    if suffix in (".h5", ".hdf5"):
        return [_save_h5(result, path)]
    raise PocoError(f"{path}: results go to a .csv, .h5 or .hdf5 file")


def _write_csv(path: Path, cols: dict[str, np.ndarray]) -> None:
    import csv

    from poco_core.base.outputs import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(cols)
        writer.writerows(zip(*(np.asarray(c).tolist() for c in cols.values())))


def _save_csv(result: EmbeddingAnalysis, path: Path) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_csv(path, result.columns(with_embedding=True))
    written = [path]
    if result.similarity is not None:
        sim_path = path.with_name(f"{path.stem}_region_similarity.csv")
        cols = {"region": np.array(result.region_names)}
        cols.update({name: result.similarity[:, k] for k, name in enumerate(result.region_names)})
        _write_csv(sim_path, cols)
        written.append(sim_path)
    return written


def _save_h5(result: EmbeddingAnalysis, path: Path) -> Path:
    import h5py

    from poco_core.base.outputs import atomic_path

    text = h5py.string_dtype()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        rois = f.create_group("rois")
        for name, col in result.columns(with_embedding=False).items():
            if name.startswith("similarity_"):
                continue  # stored together as rois/similarity (N, R)
            is_text = col.dtype.kind == "U"
            rois.create_dataset(name, data=col.astype(object) if is_text else col, dtype=text if is_text else None)
        rois.create_dataset("embedding", data=result.embedding)
        if result.roi_similarity is not None:
            rois.create_dataset("similarity", data=result.roi_similarity)
        if result.similarity is not None:
            sim = f.create_group("region_similarity")
            sim.create_dataset("regions", data=np.array(result.region_names, dtype=object), dtype=text)
            sim.create_dataset("normalised", data=result.similarity)
            sim.create_dataset("raw", data=result.similarity_raw)
        f.attrs["summary"] = json.dumps(result.summary())
    return path


def load_clusters(path: str | Path) -> dict[str, np.ndarray]:
    """The ``session``, ``roi_id`` and ``cluster`` columns of a table ``save_results`` wrote (.csv or .h5),
    so another analysis (a circuit fit's groups) can use the clusters."""
    from poco_core.base.errors import CorruptFile

    path = Path(path)
    try:
        if path.suffix.lower() in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                ds = {k: f["rois"][k] for k in ("session", "roi_id", "cluster")}
                cols = {k: d.asstr()[()] if d.dtype.kind in "OS" else d[()] for k, d in ds.items()}
        else:
            import pandas as pd

            table = pd.read_csv(path, dtype={"session": str, "roi_id": str})
            cols = {k: table[k].to_numpy() for k in ("session", "roi_id", "cluster")}
    except KeyError as exc:
        raise CorruptFile(str(path), f"not an embedding cluster table (no column {exc})") from exc
    except (OSError, ValueError) as exc:
        raise CorruptFile(str(path), f"not a readable embedding table ({exc})") from exc
    return {"session": cols["session"].astype(str), "roi_id": cols["roi_id"].astype(str),
            "cluster": np.asarray(cols["cluster"], dtype=int)}
