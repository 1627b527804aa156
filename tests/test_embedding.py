"""Unit-embedding analysis on synthetic embeddings whose region structure is known."""
from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
import torch

from poco_core.analysis.embedding import (
    NOISE,
    SessionUnits,
    analyze,
    cluster_units,
    region_recovery,
    save_results,
    session_units,
)
from poco_core.analysis.region_similarity import (
    normalise_rows,
    region_means,
    region_similarity,
    roi_scores,
)
from poco_core.base.errors import Cancelled, PocoError
from poco_core.base.events import CancelToken
from poco_core.data.recording import Recording

REGIONS = np.array(["hindbrain", "midbrain", "telencephalon"])


def blobs(n: int, seed: int, d: int = 12, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Units around one centre per region (the same centres in every session)."""
    centres = np.random.default_rng(99).normal(size=(len(REGIONS), d)) * 3
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, len(REGIONS), n)
    return centres[codes] + spread * rng.normal(size=(n, d)), REGIONS[codes]


def units(n: int = 120, sessions: int = 2) -> list[SessionUnits]:
    out = []
    for s in range(sessions):
        x, reg = blobs(n, seed=s)
        out.append(SessionUnits(f"s{s}", np.array([f"roi{i}" for i in range(n)]), x, reg))
    return out


def brute_force(xs, regs, metric):
    """Mean pairwise similarity by explicit loops over same-session pairs (the spec's definition)."""
    names = sorted(set(np.concatenate(regs)))
    total, count = np.zeros((len(names),) * 2), np.zeros((len(names),) * 2)
    for x, reg in zip(xs, regs):
        for i in range(len(x)):
            for j in range(len(x)):
                if i == j:
                    continue
                a, b = names.index(reg[i]), names.index(reg[j])
                if metric == "cosine":
                    total[a, b] += x[i] @ x[j] / np.linalg.norm(x[i]) / np.linalg.norm(x[j])
                else:
                    total[a, b] -= np.linalg.norm(x[i] - x[j])
                count[a, b] += 1
    return total / count


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_region_similarity_matches_pairwise_definition(metric):
    data = [blobs(25, seed=s, d=5) for s in range(2)]
    xs, regs = [d[0] for d in data], [d[1] for d in data]
    names, raw = region_similarity(xs, regs, metric)
    assert names == sorted(REGIONS)
    np.testing.assert_allclose(raw, brute_force(xs, regs, metric), rtol=1e-10, atol=1e-10)


def test_euclidean_subsamples_large_regions_deterministically():
    x, reg = blobs(300, seed=0)
    a = region_similarity([x], [reg], "euclidean", max_units=30, seed=1)[1]
    b = region_similarity([x], [reg], "euclidean", max_units=30, seed=1)[1]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, region_similarity([x], [reg], "euclidean")[1], rtol=0.15)


def test_normalised_rows_span_zero_to_one_and_regions_are_most_like_themselves():
    xs = [u.embedding for u in units()]
    regs = [u.regions for u in units()]
    sim = normalise_rows(region_similarity(xs, regs)[1])
    assert np.all((sim >= 0) & (sim <= 1))
    assert np.allclose(sim.max(axis=1), 1) and np.allclose(sim.min(axis=1), 0)
    np.testing.assert_array_equal(np.diag(sim), 1)


def test_single_unit_region_has_no_diagonal_and_constant_row_is_ones():
    x = np.array([[1.0, 0], [0, 1], [0, 1.1]])
    names, raw = region_similarity([x], [np.array(["a", "b", "b"])])
    assert np.isnan(raw[0, 0]) and raw[1, 1] == pytest.approx(1)
    np.testing.assert_array_equal(normalise_rows(raw)[0], [np.nan, 1.0])
    np.testing.assert_array_equal(normalise_rows(np.array([[2.0, 2.0]])), [[1.0, 1.0]])


def test_roi_scores_are_highest_for_the_own_region():
    x, reg = blobs(200, seed=3)
    names = sorted(REGIONS)
    for metric in ("cosine", "euclidean"):
        scores = roi_scores(x, region_means(x, reg, names, metric), metric)
        assert scores.shape == (200, 3)
        assert np.mean(np.array(names)[scores.argmax(axis=1)] == reg) > 0.95
    means = region_means(x, reg, names + ["absent"])
    assert np.isnan(roi_scores(x, means)[:, 3]).all()


def test_kmeans_chooses_number_of_regions_by_silhouette_and_hdbscan_finds_them():
    x, reg = blobs(240, seed=0)
    labels, silhouette = cluster_units(x, "kmeans", seed=0)
    assert max(silhouette, key=silhouette.get) == 3 and len(set(labels)) == 3
    assert len(set(cluster_units(x, "kmeans", n_clusters=5)[0])) == 5
    found = cluster_units(x, "hdbscan", min_cluster_size=10)[0]
    assert len(set(found) - {NOISE}) == 3
    with pytest.raises(PocoError, match="HDBSCAN"):
        cluster_units(x, "hdbscan", n_clusters=3)


def test_recovery_beats_shuffled_control_only_when_structure_exists():
    x, reg = blobs(240, seed=0)
    clusters = cluster_units(x, n_clusters=3)[0]
    rec = region_recovery(x, reg, clusters)
    assert rec["ari"] > 0.9 and abs(rec["ari_shuffled"]) < 0.05
    assert rec["accuracy"] > 0.95 and rec["accuracy_shuffled"] < 0.6
    noise = np.random.default_rng(0).normal(size=x.shape)
    flat = region_recovery(noise, reg, cluster_units(noise, n_clusters=3)[0])
    assert flat["ari"] < 0.1 and flat["accuracy"] < 0.6
    assert region_recovery(x, np.full(240, "one"), clusters) is None


@pytest.fixture(scope="module")
def analysis():
    events = []
    result = analyze(units(), seed=0, progress=events.append)
    return result, events


def test_analyze_aligns_rois_and_reports_progress(analysis):
    result, events = analysis
    assert [e["stage"] for e in events] == ["umap", "clusters", "similarity", "scores", "recovery", "done"]
    assert result.umap.shape == (240, 2) and np.isfinite(result.umap).all()
    assert result.n_clusters == 3 and result.recovery["ari"] > 0.9
    cols = result.columns()
    assert list(cols)[:6] == ["session", "roi_id", "region", "umap_x", "umap_y", "cluster"]
    assert {f"similarity_{r}" for r in REGIONS} <= set(cols)
    assert all(len(c) == 240 for c in cols.values())


def test_analyze_is_reproducible_for_a_seed(analysis):
    again = analyze(units(), seed=0)
    np.testing.assert_allclose(again.umap, analysis[0].umap, atol=1e-5)
    np.testing.assert_array_equal(again.cluster, analysis[0].cluster)


def test_analyze_stops_when_cancelled():
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        analyze(units(), cancel=token)


def test_sessions_without_regions_still_get_umap_and_clusters():
    plain = [SessionUnits(u.session, u.unit_ids, u.embedding) for u in units(n=40)]
    result = analyze(plain, n_clusters=3)
    assert result.region is None and result.recovery is None and "region" not in result.columns()


def test_csv_and_h5_exports_hold_the_per_roi_table_and_matrix(analysis, tmp_path):
    result = analysis[0]
    csv_files = save_results(result, tmp_path / "out.csv")
    assert [p.name for p in csv_files] == ["out.csv", "out_region_similarity.csv"]
    with open(csv_files[0]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 240
    assert {"session", "roi_id", "region", "umap_x", "umap_y", "cluster", "emb_0", "emb_11"} <= set(rows[0])
    with open(csv_files[1]) as fh:
        matrix = list(csv.reader(fh))
    assert matrix[0] == ["region", *sorted(REGIONS)] and len(matrix) == 4
    (h5,) = save_results(result, tmp_path / "out.h5")
    with h5py.File(h5) as f:
        assert f["rois/embedding"].shape == (240, 12) and f["rois/similarity"].shape == (240, 3)
        assert f["rois/roi_id"].asstr()[0] == "roi0"
        np.testing.assert_allclose(f["region_similarity/normalised"][()], result.similarity)
        assert list(f["region_similarity/regions"].asstr()[()]) == sorted(REGIONS)
    with pytest.raises(PocoError, match="csv"):
        save_results(result, tmp_path / "out.txt")


class FakeModel:
    """Just the model contract `session_units` relies on."""

    def __init__(self, specs):
        from poco_core.models.base import SessionSpec

        self.sessions = [SessionSpec(name, "default", list(ids)) for name, ids, _ in specs]
        self._emb = {name: torch.tensor(x) for name, _, x in specs}

    def unit_embeddings(self, session):
        return self._emb[session]

    def initial_unit_embeddings(self, session):
        return None  # no draw kept: the rows as they are


def test_session_units_takes_regions_from_recordings_by_roi_id():
    x, reg = blobs(6, seed=0, d=3)
    ids = [f"r{i}" for i in range(6)]
    rec = Recording(np.zeros((10, 6), np.float32), 1.0, np.array(ids[::-1]), session="a", regions=reg[::-1])
    model = FakeModel([("a", ids, x), ("b", ids, x)])
    a, b = session_units(model, [rec])
    np.testing.assert_array_equal(a.regions, reg)
    assert b.regions is None and a.embedding.dtype == np.float32
    assert [u.session for u in session_units(model, sessions=["b"])] == ["b"]


def test_trace_statistics_ceiling_tells_timescales_apart():
    """The ceiling classifier sees each trace's own dynamics: slow vs fast AR(1) units separate."""
    from scipy.signal import lfilter

    from poco_core.analysis.embedding import region_recovery, trace_features

    rng = np.random.default_rng(0)
    noise = rng.standard_normal((2000, 40))
    slow = lfilter([1], [1, -0.95], noise[:, :20], axis=0)
    fast = lfilter([1], [1, -0.2], noise[:, 20:], axis=0)
    feats = trace_features(np.hstack([slow, fast]))
    labels = np.array(["slow"] * 20 + ["fast"] * 20)
    rec = region_recovery(feats, labels, np.zeros(40, int))
    assert feats.shape[0] == 40 and rec["accuracy"] > 0.95


def test_single_assemblies_become_region_labels():
    from poco_core.analysis.embedding import _regions_of
    from poco_core.data.recording import Recording

    rec = Recording(traces=np.zeros((10, 3), np.float32), fs=1.0, roi_ids=np.array(["a", "b", "c"]),
                    roi_info={"assemblies": np.array(["2", "", "1;3"])})
    np.testing.assert_array_equal(_regions_of(rec, np.array(["c", "a", "b"])), ["", "assembly 2", ""])


def test_coactivity_ceiling_and_within_session_recovery_for_per_fish_assemblies():
    """Assemblies are groups of co-active cells, numbered per fish: traces driven by a shared latent
    per group separate by co-activity, and "assembly 1" of one fish is not that of another, so the
    within-session classifier reports them (with the trace-statistics ceiling beside it)."""
    from poco_core.analysis.embedding import coactivity_features, trace_features, within_session_recovery

    rng = np.random.default_rng(0)
    sessions = []
    for s in range(2):
        groups = np.repeat(np.arange(3), 12)
        latents = rng.standard_normal((1500, 3))
        traces = latents[:, groups] + 0.7 * rng.standard_normal((1500, 36))
        labels = np.array([f"assembly {(g + s) % 3 + 1}" for g in groups])  # numbering differs per fish
        labels[:2] = ""  # ROIs in no single assembly are left out
        emb = np.eye(3)[(groups + s) % 3] * (1 if s else -1) + 0.3 * rng.standard_normal((36, 3))
        sessions.append(SessionUnits(f"fish{s}", np.array([f"r{i}" for i in range(36)]), emb, labels,
                                     trace_features(traces), coactivity_features(traces)))
    within = within_session_recovery(sessions)
    assert within["sessions"] == 2 and within["n_units"] == 68
    assert within["coactivity_accuracy"] > 0.95 > within["chance"] + 0.5
    assert 0 < within["trace_stats_accuracy"] <= 1
    assert within["accuracy"] > 0.9 and within["accuracy_shuffled"] < 0.6
    result = analyze(sessions, n_clusters=3)
    assert result.recovery["within_session"] == within
    shuffled = [SessionUnits(u.session, u.unit_ids, u.embedding, u.regions[rng.permutation(36)]) for u in sessions]
    assert within_session_recovery(shuffled)["accuracy"] < 0.6
