"""`poco simulate` and the committed sample data."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from poco_core.cli.main import main
from poco_core.data.io import load_dataset, load_recording
from poco_core.data.simulate import make_sample_data, simulate_recording

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def test_cli_writes_one_recording(tmp_path):
    out = tmp_path / "one.h5"
    assert main(["simulate", "--out", str(out), "--rois", "30", "--frames", "200", "--seed", "5"]) == 0
    rec = load_recording(out)
    np.testing.assert_array_equal(np.asarray(rec.traces), simulate_recording(30, 200, seed=5).traces)
    assert rec.footprints.shape[0] == 30 and rec.regions is not None


def test_cli_writes_cohort_with_manifests(tmp_path):
    args = ["simulate", "--out", str(tmp_path), "--sessions", "3", "--rois", "20,25,30", "--frames", "150",
            "--held-out", "1", "--calcium"]
    assert main(args) == 0
    assert [r.n_rois for r in load_dataset(tmp_path / "manifest.json")] == [20, 25]
    held = json.loads((tmp_path / "heldout.json").read_text())
    assert [s["session"] for s in held["sessions"]] == ["fish03"]


def test_cli_rejects_mismatched_counts(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "x.h5"), "--rois", "20,30"]) == 2
    assert "one ROI count" in capsys.readouterr().err


@pytest.mark.slow
def test_sample_data_is_small_and_regenerates(tmp_path):
    make_sample_data(tmp_path)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(SAMPLE) for p in SAMPLE.rglob("*") if p.is_file() and p.name != "README.md")
    assert sum((tmp_path / f).stat().st_size for f in files) < 10e6
    for f in files:
        if f.suffix == ".h5":
            a, b = load_recording(tmp_path / f), load_recording(SAMPLE / f)
            np.testing.assert_array_equal(a.roi_ids, b.roi_ids)
            np.testing.assert_array_equal(a.centroids, b.centroids)
            # chaos amplifies last-bit BLAS differences between machines: compare only the start
            np.testing.assert_allclose(np.asarray(a.traces[:20]), np.asarray(b.traces[:20]), rtol=1e-3, atol=1e-3)
