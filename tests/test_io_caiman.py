"""CaImAn reader, on HDF5 files laid out as cnm.save (caiman.utils.utils.save_dict_to_hdf5) writes them."""
import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from poco_core.base.errors import CorruptFile, RecordingError
from poco_core.data.io import detect_format, load_recording

D1, D2, K, T = 6, 5, 3, 80


def footprint_images() -> np.ndarray:
    imgs = np.zeros((K, D1, D2))
    for k in range(K):
        imgs[k, k + 1, :k + 2] = k + 1.0  # ROI k: row k+1, columns 0..k+1
    return imgs


def write_caiman(path, with_dff=True, fr=10.0) -> dict:
    """Mirror of save_dict_to_hdf5(cnm.__dict__): None -> 'NoneType', sparse -> csc parts, dicts -> groups."""
    rng = np.random.default_rng(2)
    a = sp.csc_matrix(np.stack([img.ravel(order="F") for img in footprint_images()], axis=1))
    c = rng.normal(size=(K, T))
    dff = rng.normal(size=(K, T))
    with h5py.File(path, "w") as f:
        f["dims"] = np.array([D1, D2], dtype=np.int64)
        f["dview"] = "NoneType"
        f.attrs["mmap_file"] = "memmap_d1_6_d2_5_d3_1_order_C_frames_80.mmap"
        est = f.create_group("estimates")
        for part in ("data", "indptr", "indices"):
            est[f"A/{part}"] = getattr(a, part)
        est["A/shape"] = a.shape
        est["C"], est["S"], est["YrA"] = c, np.abs(c), 0.1 * c
        est["F_dff"] = dff if with_dff else "NoneType"
        est["center"] = np.array([[k + 1.0, k / 2 + 0.5] for k in range(K)])
        est["idx_components"] = np.array([0, 2])
        est["idx_components_bad"] = np.array([1])
        est["SNR_comp"] = np.array([3.0, 0.5, 4.0])
        est["Cn"] = np.ones((D1, D2))
        est["b"], est["f"] = np.ones((D1 * D2, 1)), np.ones((1, T))
        est["discarded_components"] = "NoneType"
        params = f.create_group("params/data")
        params["fr"] = fr if fr is not None else "NoneType"
        params["decay_time"] = 0.4
        params["fnames"] = np.array([b"movie.tif"])
    return {"C": c, "F_dff": dff}


def test_reads_c_footprints_and_fr(tmp_path):
    path = tmp_path / "cnm.hdf5"
    data = write_caiman(path)
    assert detect_format(path) == "caiman"
    rec = load_recording(path)
    assert rec.traces.dtype == np.float32 and rec.traces.shape == (T, K)
    np.testing.assert_allclose(rec.traces, data["C"].T, rtol=1e-6)
    assert rec.fs == 10.0 and rec.image_shape == (D1, D2) and rec.anatomy.shape == (D1, D2)
    np.testing.assert_array_equal(rec.footprints.toarray().reshape(K, D1, D2), footprint_images())
    np.testing.assert_allclose(rec.centroids[2], [3.0, 1.5])
    assert rec.roi_info["accepted"].tolist() == [True, False, True]
    assert rec.provenance["series_choices"] == ["C", "F_dff", "S", "YrA"]


def test_f_dff_and_accepted_only(tmp_path):
    path = tmp_path / "cnm.hdf5"
    data = write_caiman(path)
    rec = load_recording(path, series="F_dff", iscell_only=True)
    np.testing.assert_allclose(rec.traces, data["F_dff"][[0, 2]].T, rtol=1e-6)
    assert rec.roi_ids.tolist() == ["0", "2"]


def test_nonetype_values(tmp_path):
    path = tmp_path / "cnm.hdf5"
    write_caiman(path, with_dff=False, fr=None)
    rec = load_recording(path)
    assert rec.fs == 1.0 and any("placeholder" in w for w in rec.provenance["warnings"])
    with pytest.raises(RecordingError, match=r"F_dff is missing \(F_dff exists only after detrend_df_f\(\)\)"):
        load_recording(path, series="F_dff")


def test_mismatched_components(tmp_path):
    path = tmp_path / "cnm.hdf5"
    write_caiman(path)
    with h5py.File(path, "a") as f:
        del f["estimates/C"]
        f["estimates/C"] = np.zeros((K + 1, T))
    with pytest.raises(CorruptFile, match="estimates/A has 3 components but C has 4"):
        load_recording(path)


def test_garbage_h5(tmp_path):
    path = tmp_path / "cnm.hdf5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(CorruptFile, match="cnm.hdf5.*truncated or corrupt"):
        load_recording(path)
    path.write_bytes(b"not hdf5 at all \x00\x01\x02")
    with pytest.raises(CorruptFile, match="name says hdf5 but the content is not"):
        load_recording(path)
