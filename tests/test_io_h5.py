"""Project HDF5 format: round trip, lazy reading, appending, and version/corruption errors."""
import pickle

import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from poco_core.base.errors import CorruptFile, InvalidTraces, RecordingError
from poco_core.data.io import (
    append_frames,
    detect_format,
    load_recording,
    save_recording,
)
from poco_core.data.io.arrays import LazyH5Array
from poco_core.data.recording import Recording


def make_recording(t=50, n=4) -> Recording:
    rng = np.random.default_rng(3)
    return Recording(
        traces=rng.normal(size=(t, n)).astype(np.float32), fs=20.0, roi_ids=[f"c{i}" for i in range(n)],
        session="s1", dataset="d", footprints=sp.random(n, 6 * 7, density=0.2, format="csr", random_state=0),
        centroids=rng.uniform(0, 5, size=(n, 2)), anatomy=np.ones((6, 7), np.float32),
        regions=["A", "A", "B", "B"][:n], roi_names=[f"cell {i}" for i in range(n)],
        provenance={"note": "made", "shape": (6, 7)}, extra_traces={"Fneu": np.zeros((t, n), np.float32)},
        roi_info={"iscell": np.array([True, False, True, True])[:n], "kind": np.array(["a", "b", "c", "d"])[:n]},
    )


def test_round_trip(tmp_path):
    rec = make_recording()
    path = save_recording(rec, tmp_path / "r.h5")
    assert detect_format(path) == "poco-h5" and not list(tmp_path.glob(".*tmp*"))
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "poco-recording" and f.attrs["version"] == 1
        assert f["traces"].maxshape == (None, 4) and f["traces"].chunks is not None
    back = load_recording(path)
    np.testing.assert_array_equal(back.traces, rec.traces)
    assert (back.fs, back.session, back.dataset) == (20.0, "s1", "d")
    assert back.roi_ids.tolist() == rec.roi_ids.tolist() and back.regions.tolist() == ["A", "A", "B", "B"]
    assert back.roi_names.tolist() == rec.roi_names.tolist()
    assert (back.footprints != rec.footprints).nnz == 0
    np.testing.assert_array_equal(back.centroids, rec.centroids)
    np.testing.assert_array_equal(back.anatomy, rec.anatomy)
    np.testing.assert_array_equal(back.extra_traces["Fneu"], rec.extra_traces["Fneu"])
    assert back.roi_info["iscell"].tolist() == [True, False, True, True] and back.roi_info["kind"].tolist() == list("abcd")
    assert back.provenance["note"] == "made"


def test_append_and_lazy_read(tmp_path):
    rec = make_recording()
    path = save_recording(rec, tmp_path / "r.h5")
    lazy = load_recording(path, lazy=True).traces
    assert isinstance(lazy, LazyH5Array) and lazy.shape == (50, 4)
    del lazy  # HDF5 refuses a writer while this process holds the file open (readers in other processes are fine)
    new = np.full((5, 4), 7.0, np.float32)
    assert append_frames(path, new, extra={"Fneu": np.zeros((5, 4))}) == 55
    back = load_recording(path)
    np.testing.assert_array_equal(back.traces[50:], new)
    assert back.extra_traces["Fneu"].shape == (55, 4)
    reopened = pickle.loads(pickle.dumps(load_recording(path, lazy=True).traces))  # crosses process boundaries
    np.testing.assert_array_equal(reopened[[54, 0], 1:3], np.stack([new[4, 1:3], rec.traces[0, 1:3]]))


def test_append_errors(tmp_path):
    path = save_recording(make_recording(), tmp_path / "r.h5")
    with pytest.raises(InvalidTraces, match="cannot append shape"):
        append_frames(path, np.zeros((2, 3)), extra={"Fneu": np.zeros((2, 3))})
    with pytest.raises(RecordingError, match="every extra series"):
        append_frames(path, np.zeros((2, 4)))


def test_newer_version_and_damage(tmp_path):
    path = save_recording(make_recording(), tmp_path / "r.h5")
    with h5py.File(path, "a") as f:
        f.attrs["version"] = 2
    with pytest.raises(RecordingError, match="format version 2 is newer"):
        load_recording(path)
    with h5py.File(path, "a") as f:
        f.attrs["version"] = 1
        del f["roi_ids"]
    with pytest.raises(CorruptFile, match="missing roi_ids"):
        load_recording(path)
