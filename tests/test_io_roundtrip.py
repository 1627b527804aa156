"""Every reader's Recording survives save_recording -> load_recording unchanged (issue 14, bug 1:
NWB series named 'Deconvolved/plane0' used to become nested groups the reader broke on)."""
from pathlib import Path

import h5py
import numpy as np
import pytest

from poco_core.data.io import load_recording, save_recording
from test_io_caiman import write_caiman
from test_io_h5 import make_recording

DATA = Path(__file__).parent / "data"


def assert_same(a, b) -> None:
    np.testing.assert_array_equal(np.asarray(b.traces), np.asarray(a.traces))
    assert (b.fs, b.session, b.dataset) == (a.fs, a.session, a.dataset)
    assert b.roi_ids.tolist() == a.roi_ids.tolist()
    for name in ("regions", "roi_names", "centroids", "anatomy"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(y, x)
    assert (a.footprints is None) == (b.footprints is None)
    if a.footprints is not None:
        assert a.footprints.shape == b.footprints.shape and (a.footprints != b.footprints).nnz == 0
    assert a.image_shape == b.image_shape
    assert sorted(b.extra_traces) == sorted(a.extra_traces)
    for k, v in a.extra_traces.items():
        np.testing.assert_array_equal(np.asarray(b.extra_traces[k]), np.asarray(v))
    assert sorted(b.roi_info) == sorted(a.roi_info)
    for k, v in a.roi_info.items():
        assert np.asarray(b.roi_info[k]).dtype.kind == np.asarray(v).dtype.kind or np.asarray(v).dtype.kind in "US", k
        np.testing.assert_array_equal(np.asarray(b.roi_info[k]), np.asarray(v))


def _caiman(tmp_path):
    write_caiman(tmp_path / "cnm.hdf5")
    return load_recording(tmp_path / "cnm.hdf5")


def _plain(tmp_path):
    np.save(tmp_path / "traces.npy", np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32))
    return load_recording(tmp_path / "traces.npy", fs=7.5)


READERS = {
    "suite2p 1.1 (real)": lambda tmp: load_recording(DATA / "suite2p_sim/suite2p/plane0"),
    "suite2p 0.x (real, FISSA)": lambda tmp: load_recording(DATA / "suite2p_fissa/suite2p/plane0"),
    "NWB (real, suite2p 1.1 export)": lambda tmp: load_recording(DATA / "suite2p_sim/suite2p/ophys.nwb"),
    "CaImAn": _caiman,
    "plain npy": _plain,
    "Triplett csv (real)": lambda tmp: load_recording(DATA / "triplett_zf_20170215-f3"),
    "project h5": lambda tmp: load_recording(save_recording(make_recording(), tmp / "in.h5")),
}


@pytest.mark.parametrize("fmt", list(READERS))
def test_reader_output_round_trips(fmt, tmp_path):
    rec = READERS[fmt](tmp_path)
    back = load_recording(save_recording(rec, tmp_path / "out.h5"))
    assert_same(rec, back)


def test_slash_names_stay_flat_and_append(tmp_path):
    from poco_core.data.io import append_frames

    rec = load_recording(DATA / "suite2p_sim/suite2p/ophys.nwb")
    assert "Deconvolved/plane0" in rec.extra_traces
    path = save_recording(rec, tmp_path / "nwb.h5")
    with h5py.File(path, "r") as f:
        assert all(isinstance(v, h5py.Dataset) for v in f["extra_traces"].values())
    n = append_frames(path, np.zeros((2, rec.n_rois)), extra={k: np.ones((2, rec.n_rois)) for k in rec.extra_traces})
    assert n == rec.n_frames + 2
    assert np.asarray(load_recording(path).extra_traces["Deconvolved/plane0"])[-1].tolist() == [1.0] * rec.n_rois


def test_reads_files_with_nested_series(tmp_path):
    """Files written before names were escaped (nested groups) still read, names joined by '/'."""
    rec = make_recording()
    path = save_recording(rec, tmp_path / "old.h5")
    with h5py.File(path, "a") as f:
        f["extra_traces"].create_group("Deconvolved")["plane0"] = np.ones(rec.traces.shape, np.float32)
    assert np.asarray(load_recording(path).extra_traces["Deconvolved/plane0"]).sum() == rec.traces.size
