"""Say what preprocessing did (issue 14): PreprocessState.report() on real tool output."""
from pathlib import Path

import numpy as np

from poco_core.data.io import load_recording
from poco_core.data.preprocess import PreprocessConfig, fit_preprocess
from test_io_caiman import write_caiman

DATA = Path(__file__).parent / "data"


def test_suite2p_report_names_cells_and_neuropil():
    rec = load_recording(DATA / "suite2p_sim/suite2p/plane0")
    report = fit_preprocess(rec, PreprocessConfig(iscell_only=True)).report()
    assert report[0] == "48 of 53 ROIs kept" and "iscell_only: kept the 48 of 53 ROIs marked 'iscell'" in report
    assert any(s.startswith("neuropil not subtracted (set neuropil_coef") for s in report)
    assert "neuropil subtracted: F - 0.7 x Fneu" in fit_preprocess(rec, PreprocessConfig(neuropil_coef=0.7)).report()


def test_triplett_report_without_fneu_or_iscell_and_with_a_flat_roi():
    rec = load_recording(DATA / "triplett_zf_20170215-f3")
    traces = np.array(rec.traces)
    traces[:, 3] = 1.0
    report = fit_preprocess(rec.with_traces(traces), PreprocessConfig(iscell_only=True)).report()
    assert report[0] == "19 of 20 ROIs kept"
    assert any(s.startswith("dropped 1 ROI(s) (zero variance): ") for s in report)
    assert "no Fneu: neuropil not subtracted" in report
    assert any("no 'iscell' (suite2p) or 'accepted' (CaImAn) column; all ROIs kept" in s for s in report)


def test_caiman_accepted_is_honoured_by_iscell_only(tmp_path):
    write_caiman(tmp_path / "cnm.hdf5")
    state = fit_preprocess(load_recording(tmp_path / "cnm.hdf5"), PreprocessConfig(iscell_only=True))
    assert state.unit_ids == ["0", "2"]
    assert "iscell_only: kept the 2 of 3 ROIs marked 'accepted'" in state.report()


def test_nwb_neuropil_series_is_subtracted():
    """suite2p's NWB export names Fneu 'Neuropil/plane0'; neuropil_coef uses it."""
    nwb = load_recording(DATA / "suite2p_sim/suite2p/ophys.nwb")
    folder = load_recording(DATA / "suite2p_sim/suite2p/plane0")
    a = fit_preprocess(nwb, PreprocessConfig(neuropil_coef=0.7))
    b = fit_preprocess(folder, PreprocessConfig(neuropil_coef=0.7))
    assert "neuropil subtracted: F - 0.7 x Fneu" in a.report()
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-5)
