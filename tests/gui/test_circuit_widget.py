"""The Circuit dock: a fit as a background job, its plots, and the shared ROI selection."""
from __future__ import annotations

import numpy as np
import pytest

from poco_core.analysis.circuit import DataPrep, fit_circuit
from poco_core.data.circuit_sim import simulate_three_regions
from poco_napari.circuit_widget import CircuitWidget
from poco_napari.jobs import JobStatus
from poco_napari.layers import recording_layers
from poco_napari.selection import selection_for

TIMEOUT_MS = 180_000


@pytest.fixture
def dock(make_napari_viewer, qtbot):
    rec = simulate_three_regions(n_per_region=8, n_frames=150, amp_in=0.5, seed=2).recording()
    viewer = make_napari_viewer()
    for data, meta, kind in recording_layers(rec):
        viewer._add_layer_from_data(data, meta, kind)
    widget = CircuitWidget(viewer)
    qtbot.addWidget(widget)
    return widget, rec


def test_fit_runs_as_a_job_and_is_shown(dock, qtbot):
    widget, _ = dock
    widget.runs.setValue(3)
    widget.free_every.setValue(1)
    widget.tau_ms.setValue(100)
    widget.zscore.setChecked(False)
    assert "units" in widget.estimate.text() and "MiB" in widget.estimate.text()
    with qtbot.waitSignal(widget.fit_shown, timeout=TIMEOUT_MS):
        job = widget.start()
        assert job is not None and not widget.start_button.isEnabled()
    assert job.status is JobStatus.DONE
    fit = widget.fit
    assert len(fit.history) == 3 and widget.curve.free_runs == [1, 2, 3]
    assert widget.curve.chi2 == [h["chi2"] for h in fit.history]
    assert widget.j_image.matrix.shape == (24, 24)
    assert widget.current_matrix.matrix.shape == (3, 4)  # targets x (sources + external)
    assert [widget.target.itemText(i) for i in range(widget.target.count())] == ["A", "B", "C"]
    assert "Free-run pVar" in widget.status.text() and "not the true connectivity" in widget.banner.text()


def test_selection_shows_each_roi_fit_and_currents_follow_the_target(dock):
    widget, rec = dock
    widget.show_fit(fit_circuit(rec, 1.0, n_train=2, free_every=100, dt_factor=2, prep=DataPrep(standardize="none")))
    selection_for(rec).set([0, 20])
    assert widget.roi_fit.shown[0].startswith("u0 (pVar") and widget.roi_fit.shown[1].startswith("u20")
    widget.target.setCurrentText("C")
    assert "of C" in widget.region_currents.plot.titleLabel.text
    assert widget.current_grid.grid_shape == (3, 4)  # targets x (sources + external), one colour scale
    widget.kind.setCurrentText("excitatory")
    assert widget.current_matrix.matrix.shape == (3, 3) and np.all(widget.current_matrix.matrix >= 0)
    assert widget.current_grid.grid_shape == (3, 3)
    assert widget.j_image.describe(0, 1).startswith("row u")


def test_cancel_stops_the_job(dock, qtbot):
    widget, _ = dock
    widget.runs.setValue(100000)
    job = widget.start()
    with qtbot.waitSignal(job.finished, timeout=TIMEOUT_MS):
        qtbot.waitUntil(lambda: job.step >= 1, timeout=TIMEOUT_MS)
        widget.cancel_button.click()
    assert job.status is JobStatus.CANCELLED and widget.start_button.isEnabled()


def test_groups_come_from_the_embeddings_dock_clusters(make_napari_viewer, qtbot):
    """A recording without regions or assemblies: the fit's groups are the cluster column the
    Embeddings dock wrote into the ROI layer's features (ROIs it did not analyse: "unclustered")."""
    import dataclasses

    import pandas as pd

    from poco_napari.circuit_widget import with_embedding_clusters
    from poco_napari.store import roi_layers

    rec = dataclasses.replace(simulate_three_regions(n_per_region=4, n_frames=80, seed=2).recording(), regions=None)
    viewer = make_napari_viewer()
    for data, meta, kind in recording_layers(rec):
        viewer._add_layer_from_data(data, meta, kind)
    widget = CircuitWidget(viewer)
    qtbot.addWidget(widget)
    assert with_embedding_clusters(viewer, rec) is rec  # no clusters yet: k-means later, as before
    clusters = pd.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 1, None], dtype="Int64")
    for layer in roi_layers(viewer, rec):
        features = layer.features.copy()
        features["cluster"] = clusters
        layer.features = features
    widget.runs.setValue(1)
    widget.substeps.setValue(2)
    with qtbot.waitSignal(widget.fit_shown, timeout=TIMEOUT_MS):
        widget.start()
    fit = widget.fit
    assert fit.params["region_source"] == "embedding clusters"
    assert fit.regions.tolist() == [f"cluster {c}" for c in [0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 1]] + ["unclustered"]
    assert fit.region_names == ["cluster 0", "cluster 1", "cluster 2", "unclustered"]


def test_j_views_roi_pvars_rasters_and_export(dock, tmp_path):
    """The J tab's views (J, J - J0, block means; PINning's plastic columns ticked), the per-ROI pVar
    histogram and rasters, selecting the worst-fitted ROIs, and export to HDF5 and CSV."""
    import csv

    from poco_core.analysis.circuit import CircuitFit
    from poco_napari.circuit_widget import J_VIEWS, N_WORST

    widget, rec = dock
    fit = fit_circuit(rec, 0.5, n_train=2, free_every=100, dt_factor=2, prep=DataPrep(standardize="none"))
    widget.show_fit(fit)
    order = fit.order()
    shown = widget.j_image.matrix
    assert shown.shape == (24, 24) and np.allclose(shown, fit.J[np.ix_(order, order)])
    assert widget.j_image.getAxis("top").isVisible()  # p = 0.5: plastic columns ticked
    widget.j_view.setCurrentText(J_VIEWS[1])
    assert np.allclose(widget.j_image.matrix, (fit.J - fit.J0)[np.ix_(order, order)])
    assert not np.any(widget.j_image.matrix[:, ~np.isin(order, fit.plastic)])  # only plastic columns learn
    widget.j_view.setCurrentText(J_VIEWS[2])
    assert widget.j_image.matrix.shape == (3, 3)
    a = fit.regions == "A"
    assert widget.j_image.matrix[0, 0] == pytest.approx(fit.J[np.ix_(a, a)].mean())
    assert widget.histogram.counts.sum() == 24 and widget.rasters.shape == (24, 150)
    widget.select_worst()
    picked = list(selection_for(rec).indices)
    assert len(picked) == N_WORST
    assert max(fit.pvar_per_neuron[picked]) <= np.sort(fit.pvar_per_neuron)[N_WORST - 1] + 1e-12
    h5, table = widget.export(tmp_path / "fit.h5"), widget.export(tmp_path / "fit.csv")
    assert CircuitFit.load(h5[0]).pvar_free == pytest.approx(fit.pvar_free)
    rows = list(csv.DictReader(open(table[0])))
    assert len(rows) == 24 and {r["group"] for r in rows} == {"A", "B", "C"}
    assert sum(r["plastic"] == "True" for r in rows) == len(fit.plastic)
    currents = list(csv.DictReader(open(table[1])))
    assert len(currents) == 12 and "Exported" in widget.status.text()


def test_seed_ensemble_refits_and_shows_mean_and_stable_pairs(dock, qtbot):
    widget, _ = dock
    widget.runs.setValue(2)
    widget.substeps.setValue(2)
    widget.zscore.setChecked(False)
    widget.n_seeds.setValue(2)
    jobs = widget.start_ensemble()
    assert len(jobs) == 2 and [j.spec.model_config["seed"] for j in jobs] == [0, 1]
    assert not widget.ensemble_button.isEnabled()
    qtbot.waitUntil(lambda: widget.ensemble is not None, timeout=TIMEOUT_MS)
    ens = widget.ensemble
    assert ens.rms_mean.shape == (3, 4) and len(ens.pvars) == 2 and widget.ensemble_button.isEnabled()
    assert np.allclose(widget.current_matrix.matrix, ens.rms_mean)
    assert "Seed ensemble of 2 fits" in widget.ensemble_label.text() and "sd" in widget.current_matrix.describe(0, 0)
