"""Plain .npy/.npz/.csv traces, the Triplett zebrafish folder, load_dataset and check_min_length."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from poco_core.base.errors import (
    CorruptFile,
    FormatNotRecognised,
    InvalidTraces,
    RecordingError,
)
from poco_core.data.io import (
    check_min_length,
    detect_format,
    load_dataset,
    load_recording,
)

TRIPLETT = Path(__file__).parent / "data" / "triplett_zf_20170215-f3"
FISSA = Path(__file__).parent / "data" / "suite2p_fissa"


def test_npy_orientation_and_memmap(tmp_path):
    frames_first = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
    np.save(tmp_path / "a.npy", frames_first)
    rec = load_recording(tmp_path / "a.npy", fs=5.0)
    assert rec.traces.shape == (100, 8) and isinstance(rec.traces, np.memmap) and rec.fs == 5.0
    np.save(tmp_path / "b.npy", frames_first.T)  # 8 x 100: clearly ROIs first
    rec = load_recording(tmp_path / "b.npy", fs=5.0)
    np.testing.assert_array_equal(rec.traces, frames_first)
    assert rec.provenance["orientation"].startswith("ROIs x frames (auto")
    assert load_recording(tmp_path / "b.npy", fs=5.0, rois_first=False).traces.shape == (8, 100)


def test_fs_placeholder_warns(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((100, 3), np.float32) * np.arange(3))
    rec = load_recording(tmp_path / "a.npy")
    assert rec.fs == 1.0 and any("placeholder" in w for w in rec.provenance["warnings"])


def test_npz_with_fs_and_ids(tmp_path):
    traces = np.arange(60, dtype=np.float64).reshape(20, 3)
    np.savez(tmp_path / "t.npz", traces=traces, fs=12.5, roi_ids=np.array(["x", "y", "z"]))
    rec = load_recording(tmp_path / "t.npz")
    assert rec.fs == 12.5 and rec.roi_ids.tolist() == ["x", "y", "z"] and rec.traces.dtype == np.float32
    np.savez(tmp_path / "two.npz", a=traces, b=traces)
    with pytest.raises(RecordingError, match=r"pass key= one of \['a', 'b'\]"):
        load_recording(tmp_path / "two.npz")
    assert load_recording(tmp_path / "two.npz", key="b").n_rois == 3


def test_csv_with_header(tmp_path):
    (tmp_path / "t.csv").write_text("cellA,cellB\n1,2\n3,4\n5,7\n")
    assert detect_format(tmp_path / "t.csv") == "csv"
    rec = load_recording(tmp_path / "t.csv", fs=2.0)
    assert rec.roi_names.tolist() == ["cellA", "cellB"] and rec.traces[:, 1].tolist() == [2, 4, 7]


def test_triplett_folder():
    assert detect_format(TRIPLETT) == "triplett"
    rec = load_recording(TRIPLETT, fs=4.0)
    assert (rec.n_frames, rec.n_rois, rec.session) == (300, 20, "zf_20170215-f3")
    first = np.loadtxt(next(TRIPLETT.glob("*activity*")), delimiter=",", max_rows=1)
    np.testing.assert_allclose(rec.traces[:, 0], first, rtol=1e-6)
    np.testing.assert_allclose(rec.centroids[0], [96.5, 11.5])  # file line "11.5,96.5" is (x, y)
    assert rec.roi_info["assemblies"][4] == "3;4" and rec.roi_info["assemblies"][0] == ""


def test_bad_plain_inputs(tmp_path):
    (tmp_path / "ragged.csv").write_text("1,2,3\n4,5\n")
    with pytest.raises(CorruptFile, match="ragged.csv"):
        load_recording(tmp_path / "ragged.csv")
    np.save(tmp_path / "cube.npy", np.zeros((4, 5, 6)))
    with pytest.raises(CorruptFile, match="expected a 2-D"):
        load_recording(tmp_path / "cube.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 5), np.float32))
    with pytest.raises(InvalidTraces, match="empty recording"):
        load_recording(tmp_path / "empty.npy")
    (tmp_path / "notes.txt").write_text("hello, these are notes")
    with pytest.raises(FormatNotRecognised):
        load_recording(tmp_path / "notes.txt")
    with pytest.raises(RecordingError, match="does not exist"):
        load_recording(tmp_path / "nope.npy")
    np.save(tmp_path / "a.npy", np.zeros((10, 2), np.float32))
    with pytest.raises(RecordingError, match=r"\['plane'\] do not apply to npy"):
        load_recording(tmp_path / "a.npy", plane=1)


def test_check_min_length(tmp_path):
    np.save(tmp_path / "a.npy", np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32))
    rec = load_recording(tmp_path / "a.npy", fs=1.0)
    check_min_length(rec, 40)
    with pytest.raises(InvalidTraces, match="40 frames, but one window needs 64"):
        check_min_length(rec, 64)


def test_dataset_folder_and_manifest(tmp_path):
    shutil.copytree(TRIPLETT, tmp_path / "fish" / "zf1")
    shutil.copytree(FISSA, tmp_path / "fish" / "mouse")
    (tmp_path / "fish" / "readme.txt").write_text("not a recording")
    recs = load_dataset(tmp_path / "fish", fs=3.0)
    assert [(r.session, r.dataset, r.fs) for r in recs] == [("mouse", "fish", 3.0), ("zf_20170215-f3", "fish", 3.0)]

    (tmp_path / "regions.csv").write_text("roi_id,region\n" + "".join(f"{i},{'L' if i < 10 else 'R'}\n" for i in range(20)))
    manifest = {"dataset": "tectum", "sessions": [
        {"path": "fish/zf1", "session": "a", "fs": 2.0, "regions": "regions.csv"},
        {"path": "fish/mouse", "session": "b", "neuropil_coef": 0.7},
    ]}
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    a, b = load_dataset(tmp_path / "m.json")
    assert (a.session, a.dataset, a.fs) == ("a", "tectum", 2.0) and a.regions[:11].tolist() == ["L"] * 10 + ["R"]
    assert b.provenance["neuropil_coef"] == 0.7
    (tmp_path / "m.yaml").write_text("dataset: x\nsessions:\n  - {path: fish/zf1}\n  - {path: fish/zf1}\n")
    with pytest.raises(RecordingError, match="session names must be unique"):
        load_dataset(tmp_path / "m.yaml")
    (tmp_path / "bad.yaml").write_text("sessions: [")
    with pytest.raises(CorruptFile, match="cannot parse manifest"):
        load_dataset(tmp_path / "bad.yaml")
