"""suite2p reader: the real FISSA example (0.x) and a 1.x layout written as suite2p 1.1 writes it."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from poco_core.base.errors import CorruptFile, InvalidTraces, RecordingError
from poco_core.data.io import detect_format, find_problems, load_recording

FISSA = Path(__file__).parent / "data" / "suite2p_fissa"
PLANE0 = FISSA / "suite2p" / "plane0"


def copy_fissa(tmp_path: Path) -> Path:
    dst = tmp_path / "fissa"
    shutil.copytree(FISSA, dst)
    return dst / "suite2p" / "plane0"


def write_suite2p_1x(save: Path, planes=(0,), n=3, t=50, ly=8, lx=9) -> Path:
    """suite2p 1.x plane folders: no ops.npy; db/settings/reg_outputs/detect_outputs instead."""
    rng = np.random.default_rng(1)
    for p in planes:
        d = save / "suite2p" / f"plane{p}"
        d.mkdir(parents=True)
        np.save(d / "F.npy", rng.normal(size=(n, t)).astype(np.float32) + 10 * p)
        np.save(d / "Fneu.npy", np.ones((n, t), dtype=np.float32))
        np.save(d / "spks.npy", np.zeros((n, t), dtype=np.float32))
        np.save(d / "iscell.npy", np.array([[1.0, 0.9], [0.0, 0.2], [1.0, 0.7]])[:n])
        stat = [{"ypix": np.array([i, i + 1]), "xpix": np.array([i, i]), "lam": np.array([1.0, 2.0], np.float32),
                 "med": [i + 0.5, i], "npix": 2, "snr": 1.5} for i in range(n)]
        np.save(d / "stat.npy", np.array(stat, dtype=object), allow_pickle=True)
        np.save(d / "db.npy", {"Ly": ly, "Lx": lx, "nframes": t, "iplane": p, "meanImg": np.full((ly, lx), 3.0)})
        np.save(d / "settings.npy", {"fs": 15.0, "tau": 1.0, "diameter": [6, 6], "extraction": {"neuropil_coefficient": 0.7}})
        np.save(d / "reg_outputs.npy", {"meanImg": np.full((ly, lx), 3.0), "yrange": [1, ly - 1], "xrange": [1, lx - 1], "badframes": np.zeros(t, bool)})
        np.save(d / "detect_outputs.npy", {"Vcorr": np.ones((ly - 2, lx - 2)), "max_proj": np.ones((ly - 2, lx - 2))})
    return save


def test_real_fissa_example():
    assert detect_format(FISSA) == "suite2p"
    rec = load_recording(FISSA)
    raw = np.load(PLANE0 / "F.npy")
    assert (rec.n_frames, rec.n_rois) == (864, 23)
    assert isinstance(rec.traces, np.memmap) and not rec.traces.flags.owndata  # transposed memmap, no copy
    np.testing.assert_array_equal(rec.traces, raw.T)
    assert rec.session == "suite2p_fissa" and rec.fs == 1.0
    assert rec.anatomy.shape == (176, 156) and rec.footprints.shape == (23, 176 * 156)
    stat = np.load(PLANE0 / "stat.npy", allow_pickle=True)
    row = rec.footprints[5].toarray().reshape(176, 156)
    np.testing.assert_allclose(row[stat[5]["ypix"], stat[5]["xpix"]], stat[5]["lam"])
    np.testing.assert_allclose(rec.centroids[5], stat[5]["med"])
    assert set(rec.extra_traces) == {"Fneu", "spks"} and isinstance(rec.extra_traces["Fneu"], np.memmap)
    assert any("placeholder" in p for p in find_problems(rec))  # FISSA's fs of 1 Hz
    assert not any("placeholder" in p for p in find_problems(load_recording(FISSA, fs=30.0)))


def test_neuropil_and_iscell_options():
    raw, neu = np.load(PLANE0 / "F.npy"), np.load(PLANE0 / "Fneu.npy")
    iscell = np.load(PLANE0 / "iscell.npy")[:, 0].astype(bool)
    rec = load_recording(PLANE0, neuropil_coef=0.7, iscell_only=True)
    assert rec.n_rois == iscell.sum()
    np.testing.assert_allclose(rec.traces, (raw - 0.7 * neu)[iscell].T, rtol=1e-5)
    assert rec.roi_ids.tolist() == [str(i) for i in np.flatnonzero(iscell)]


def test_suite2p_1x_layout_and_planes(tmp_path):
    save = write_suite2p_1x(tmp_path / "mouse", planes=(0, 1))
    rec = load_recording(save)
    assert rec.session == "mouse_plane0" and rec.fs == 15.0 and rec.provenance["n_planes"] == 2
    assert rec.provenance["settings_from"] == "db.npy+settings.npy+reg_outputs.npy+detect_outputs.npy"
    assert rec.anatomy.shape == (8, 9) and rec.footprints[1].toarray().reshape(8, 9)[2, 1] == 2.0
    plane1 = load_recording(save / "suite2p", plane=1)
    assert plane1.session == "mouse_plane1" and plane1.traces.mean() > 5
    vcorr = load_recording(save, anatomy="Vcorr").anatomy  # cropped image padded back to Ly x Lx
    assert vcorr.shape == (8, 9) and vcorr[0].sum() == 0 and vcorr[1:-1, 1:-1].all()
    with pytest.raises(RecordingError, match=r"no plane5; available planes: \[0, 1\]"):
        load_recording(save, plane=5)


def test_missing_f(tmp_path):
    plane = copy_fissa(tmp_path)
    (plane / "F.npy").unlink()
    with pytest.raises(RecordingError, match="F.npy"):
        load_recording(plane)


@pytest.mark.parametrize("name, value, match", [
    ("Fneu.npy", np.zeros((22, 864), np.float32), "does not match F.npy"),
    ("iscell.npy", np.zeros((20, 2)), "20 ROIs, but F.npy has 23"),
    ("stat.npy", np.array([{"ypix": [0], "xpix": [0]}] * 3, dtype=object), "3 ROIs, but F.npy has 23"),
])
def test_mismatched_roi_counts(tmp_path, name, value, match):
    plane = copy_fissa(tmp_path)
    np.save(plane / name, value, allow_pickle=True)
    with pytest.raises(CorruptFile, match=match):
        load_recording(plane)


def test_truncated_npy(tmp_path):
    plane = copy_fissa(tmp_path)
    raw = (plane / "F.npy").read_bytes()
    (plane / "F.npy").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(CorruptFile, match="F.npy.*truncated"):
        load_recording(plane)


def test_nan_frames_reported_or_allowed(tmp_path):
    plane = copy_fissa(tmp_path)
    f = np.load(plane / "F.npy")
    f[4, 10:12] = np.nan
    np.save(plane / "F.npy", f)
    with pytest.raises(InvalidTraces, match=r"frames 10, 11 \(2 in all\) and ROIs 4 \(1 in all\)"):
        load_recording(plane)
    rec = load_recording(plane, allow_nonfinite=True)
    assert rec.provenance["nonfinite_frames"] == 2 and any("NaN" in p for p in find_problems(rec))


def test_empty_recording(tmp_path):
    save = write_suite2p_1x(tmp_path / "m", t=0)
    with pytest.raises(InvalidTraces, match="empty recording: 0 frames"):
        load_recording(save)
