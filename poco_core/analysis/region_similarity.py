"""Region-by-region similarity of unit embeddings (POCO paper, appendix C.4).

Similarity between regions u and v is the mean similarity over all pairs (i in u, j in v) of units
*from the same session* (embeddings of different sessions are learned separately), pooled over
sessions; on the diagonal only distinct pairs i != j count. Each row is then min-max normalised to
[0, 1] so rows compare "which regions is u most / least like".

Metrics:
- ``cosine``: exact in O(N d) with per-region sums of unit vectors (sum_{i,j} cos = S_u . S_v).
- ``euclidean``: mean pairwise distance, reported as similarity = -distance (so after the row
  normalisation the closest region is 1 and the farthest 0; any decreasing map would give the same
  order, -d keeps it linear). Pairwise distances cost O(n_u n_v); regions larger than
  ``max_units`` units in a session are subsampled (seeded) so whole-brain data stays tractable.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METRICS = ("cosine", "euclidean")


def unit_vectors(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm == 0, 1.0, norm)


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def _pair_sums_cosine(x: np.ndarray, idx: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    u = unit_vectors(x)
    sums = np.stack([u[i].sum(axis=0) for i in idx])
    n = np.array([len(i) for i in idx], dtype=np.float64)
    total = sums @ sums.T
    self_sim = np.array([(u[i] ** 2).sum() for i in idx])  # the i == j terms (1 per non-zero unit)
    total[np.diag_indices_from(total)] -= self_sim
    count = np.outer(n, n)
    count[np.diag_indices_from(count)] = n * (n - 1)
    return total, count


def _pair_sums_euclidean(
    x: np.ndarray, idx: list[np.ndarray], max_units: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    from scipy.spatial.distance import cdist

    x = np.asarray(x, dtype=np.float64)
    idx = [np.sort(rng.choice(i, max_units, replace=False)) if len(i) > max_units else i for i in idx]
    r = len(idx)
    total, count = np.zeros((r, r)), np.zeros((r, r))
    for a in range(r):
        for b in range(a, r):
            d = cdist(x[idx[a]], x[idx[b]])
            total[a, b] = total[b, a] = -d.sum()  # diagonal: d_ii = 0 adds nothing
            na, nb = len(idx[a]), len(idx[b])
            count[a, b] = count[b, a] = na * (na - 1) if a == b else na * nb
    return total, count


def region_similarity(
    embeddings: Sequence[np.ndarray],
    regions: Sequence[np.ndarray],
    metric: str = "cosine",
    max_units: int = 2000,
    seed: int = 0,
) -> tuple[list[str], np.ndarray]:
    """(region names, raw R x R mean pairwise similarity) pooled over sessions.

    ``embeddings[s]`` is session s's (N_s, d) array and ``regions[s]`` its (N_s,) labels. Entries
    with no pairs (a region with a single unit, or two regions never recorded together) are NaN.
    """
    _check_metric(metric)
    names = sorted({str(r) for reg in regions for r in np.asarray(reg).astype(str)})
    pos = {name: k for k, name in enumerate(names)}
    total = np.zeros((len(names), len(names)))
    count = np.zeros_like(total)
    rng = np.random.default_rng(seed)
    for x, reg in zip(embeddings, regions):
        codes = np.array([pos[r] for r in np.asarray(reg).astype(str)], dtype=int)
        present = np.unique(codes)
        idx = [np.flatnonzero(codes == c) for c in present]
        if metric == "cosine":
            t, c = _pair_sums_cosine(x, idx)
        else:
            t, c = _pair_sums_euclidean(x, idx, max_units, rng)
        sel = np.ix_(present, present)
        total[sel] += t
        count[sel] += c
    with np.errstate(invalid="ignore", divide="ignore"):
        return names, np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)


def normalise_rows(m: np.ndarray) -> np.ndarray:
    """Min-max normalise each row to [0, 1], ignoring NaNs; a constant row becomes all ones."""
    m = np.asarray(m, dtype=np.float64)
    out = np.full_like(m, np.nan)
    for k, row in enumerate(m):
        ok = np.isfinite(row)
        if not ok.any():
            continue
        lo, hi = row[ok].min(), row[ok].max()
        out[k, ok] = 1.0 if hi == lo else (row[ok] - lo) / (hi - lo)
    return out


def region_means(x: np.ndarray, regions: np.ndarray, names: Sequence[str], metric: str = "cosine") -> np.ndarray:
    """(R, d) mean embedding per region (of unit vectors for cosine); NaN rows for absent regions."""
    _check_metric(metric)
    x = unit_vectors(x) if metric == "cosine" else np.asarray(x, dtype=np.float64)
    regions = np.asarray(regions).astype(str)
    out = np.full((len(names), x.shape[1]), np.nan)
    for k, name in enumerate(names):
        hit = regions == name
        if hit.any():
            out[k] = x[hit].mean(axis=0)
    return out


def roi_scores(x: np.ndarray, means: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """(N, R) similarity of each ROI to each region's mean: cosine, or -Euclidean distance."""
    _check_metric(metric)
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        scores = unit_vectors(x) @ unit_vectors(np.nan_to_num(means)).T
    else:
        from scipy.spatial.distance import cdist

        scores = -cdist(x, np.nan_to_num(means))
    scores[:, np.isnan(means).any(axis=1)] = np.nan  # regions absent from the data
    return scores
