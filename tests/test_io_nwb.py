"""NWB reader, on files written with the real pynwb."""
from datetime import datetime, timezone

import numpy as np
import pytest
from pynwb import NWBHDF5IO, NWBFile
from pynwb.base import Images
from pynwb.image import GrayscaleImage
from pynwb.ophys import (
    DfOverF,
    Fluorescence,
    ImageSegmentation,
    OpticalChannel,
    RoiResponseSeries,
)

from poco_core.base.errors import CorruptFile, RecordingError
from poco_core.data.io import detect_format, load_recording
from poco_core.data.io.arrays import LazyH5Array

SHAPE, N, T = (12, 10), 4, 120


def masks() -> np.ndarray:
    m = np.zeros((N, *SHAPE), dtype=np.float32)
    for i in range(N):
        m[i, 2 * i:2 * i + 2, i + 1:i + 4] = 1.0 + i  # ROI i: rows 2i..2i+1, cols i+1..i+3
    return m


def write_nwb(path, mask_kind="image_mask", timing="rate", location="optic tectum") -> dict:
    """An NWB file with Fluorescence/raw (float64) and DfOverF/dff, both over the same ROIs."""
    rng = np.random.default_rng(0)
    nwb = NWBFile(session_description="test", identifier="t1", session_start_time=datetime.now(timezone.utc))
    device = nwb.create_device(name="scope")
    plane = nwb.create_imaging_plane(
        name="plane", optical_channel=OpticalChannel(name="ch", description="green", emission_lambda=510.0),
        imaging_rate=7.5, description="", device=device, excitation_lambda=920.0, indicator="GCaMP6s", location=location,
    )
    ophys = nwb.create_processing_module("ophys", "optical physiology")
    seg = ImageSegmentation()
    ophys.add(seg)
    ps = seg.create_plane_segmentation(name="cells", description="", imaging_plane=plane)
    for m in masks():
        if mask_kind == "image_mask":
            ps.add_roi(image_mask=m)
        else:
            rows, cols = np.nonzero(m)
            ps.add_roi(pixel_mask=[(int(r), int(c), float(m[r, c])) for r, c in zip(rows, cols)])  # x = row
    region = ps.create_roi_table_region(region=list(range(N)), description="all")
    data = {"raw": rng.normal(size=(T, N)), "dff": rng.normal(size=(T, N)).astype(np.float32)}
    timing_kw = {"rate": 7.5} if timing == "rate" else {"timestamps": np.arange(T) / 7.5 + 3.0}
    ophys.add(Fluorescence(roi_response_series=RoiResponseSeries(name="raw", data=data["raw"], rois=region, unit="a.u.", **timing_kw)))
    ophys.add(DfOverF(roi_response_series=RoiResponseSeries(name="dff", data=data["dff"], rois=region, unit="a.u.", **timing_kw)))
    ophys.add(Images(name="Backgrounds_0", images=[GrayscaleImage(name="meanImg", data=np.ones(SHAPE))]))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return data


@pytest.mark.parametrize("mask_kind", ["image_mask", "pixel_mask"])
def test_reads_series_masks_and_rate(tmp_path, mask_kind):
    path = tmp_path / "s.nwb"
    data = write_nwb(path, mask_kind)
    assert detect_format(path) == "nwb"
    rec = load_recording(path)
    assert rec.provenance["series"] == "Fluorescence/raw"
    assert rec.provenance["series_choices"] == ["Fluorescence/raw", "DfOverF/dff"]
    assert rec.traces.dtype == np.float32 and rec.traces.shape == (T, N)
    np.testing.assert_allclose(rec.traces, data["raw"], rtol=1e-6)
    assert rec.fs == 7.5
    assert rec.image_shape == SHAPE and rec.anatomy.shape == SHAPE
    np.testing.assert_array_equal(rec.footprints.toarray().reshape(N, *SHAPE), masks())
    np.testing.assert_allclose(rec.roi_centroids()[1], [2.5, 3.0])
    assert rec.regions.tolist() == ["optic tectum"] * N
    np.testing.assert_allclose(rec.extra_traces["DfOverF/dff"], data["dff"])


def test_pick_series_by_name_and_timestamps(tmp_path):
    path = tmp_path / "s.nwb"
    data = write_nwb(path, timing="timestamps", location="unknown")
    rec = load_recording(path, series="dff")
    assert rec.provenance["series"] == "DfOverF/dff"
    np.testing.assert_allclose(rec.traces, data["dff"])
    assert rec.fs == pytest.approx(7.5)
    assert rec.regions is None  # a placeholder location is not a region


def test_unknown_series_lists_choices(tmp_path):
    path = tmp_path / "s.nwb"
    write_nwb(path)
    with pytest.raises(RecordingError, match=r"Fluorescence/raw.*DfOverF/dff"):
        load_recording(path, series="nope")


def test_lazy_traces_read_slices(tmp_path):
    path = tmp_path / "s.nwb"
    data = write_nwb(path)
    rec = load_recording(path, lazy=True)
    assert isinstance(rec.traces, LazyH5Array)
    np.testing.assert_allclose(rec.traces[10:20, [3, 1]], data["raw"][10:20, [3, 1]], rtol=1e-6)


def test_corrupt_nwb(tmp_path):
    path = tmp_path / "s.nwb"
    write_nwb(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFile, match="s.nwb"):
        load_recording(path)
