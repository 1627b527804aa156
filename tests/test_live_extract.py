"""Live extraction from raw TIFF frames, checked against the real suite2p 1.1.0 run in tests/data/suite2p_sim."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from extract_support import drain

from poco_core.base.errors import CorruptFile, RecordingError
from poco_core.cli.main import main
from poco_core.data.io import load_recording, save_recording
from poco_core.data.preprocess import PreprocessConfig, fit_preprocess
from poco_core.live.extract import ExtractionSource, load_segmentation
from poco_core.live.frames import StackLayout, TiffFrames, scanimage_layout
from poco_core.live.registration import RigidRegistration

SIM = Path(__file__).parent / "data" / "suite2p_sim"
PLANE = SIM / "suite2p" / "plane0"
REF_OFFSET = np.array([1.0, 2.0])  # suite2p's reference sits at (+1, +2) px of the scene (tests/data/SOURCES.md)


@pytest.fixture(scope="module")
def movie() -> np.ndarray:
    return tifffile.imread(SIM / "movie.tif")


@pytest.fixture(scope="module")
def segmentation():
    return load_segmentation(SIM / "suite2p")


def _extract(frames, segmentation, out=None, follow=False, **kw):
    src = ExtractionSource(frames, segmentation, out=out, follow=follow, **kw)
    return drain(src), src


def _median_r(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.median([np.corrcoef(x, y)[0, 1] for x, y in zip(a, b)]))


def test_registration_recovers_injected_shifts_within_0_2_px(movie, segmentation):
    truth = np.load(SIM / "ground_truth.npz")["shifts"] - REF_OFFSET
    reg = RigidRegistration(segmentation.anatomy)
    est = np.array([reg.shift(f)[:2] for f in movie])
    err = np.abs(est - truth)
    assert err.max() < 0.2, err.max(axis=0)
    frac = truth - np.round(truth)
    assert np.abs(frac).max() > 0.3  # the shifts really are subpixel


def test_registration_bounds_the_shift():
    rng = np.random.default_rng(0)
    ref = rng.random((64, 64)).astype(np.float32)
    reg = RigidRegistration(ref, max_shift=0.05)  # 3 px
    dy, dx, _ = reg.shift(np.roll(ref, (10, -2), axis=(0, 1)))
    assert abs(dy) <= 3 and abs(dx) <= 3
    dy, dx, _ = RigidRegistration(ref).shift(np.roll(ref, (5, -2), axis=(0, 1)))
    assert abs(dy - 5) < 0.05 and abs(dx + 2) < 0.05


def test_traces_match_suite2p_and_neuropil_applies_the_same_way(tmp_path, segmentation):
    out = tmp_path / "traces.h5"
    f, src = _extract(SIM / "movie.tif", segmentation, out=out)
    suite2p_f = np.load(PLANE / "F.npy")
    assert f.shape == (400, 53)
    assert _median_r(f.T, suite2p_f) >= 0.98
    rec = load_recording(out)
    np.testing.assert_array_equal(np.asarray(rec.traces), f)
    assert set(rec.extra_traces) == {"Fneu"} and rec.extra_traces["Fneu"].shape == (400, 53)
    assert _median_r(np.asarray(rec.extra_traces["Fneu"]).T, np.load(PLANE / "Fneu.npy")) >= 0.9
    assert rec.footprints.shape == segmentation.footprints.shape and rec.fs == 30.0
    with h5py.File(out) as h:
        np.testing.assert_allclose(h["per_frame/shift"][()], np.concatenate(src.shifts))
    state = fit_preprocess(rec, PreprocessConfig(neuropil_coef=0.7, zscore=False))
    corrected = state.apply(np.asarray(rec.traces), np.asarray(rec.extra_traces["Fneu"]))
    np.testing.assert_allclose(corrected, f - 0.7 * np.asarray(rec.extra_traces["Fneu"]), rtol=1e-5, atol=1e-3)


def _write_slowly(frames: np.ndarray, folder: Path, per_file: int, done: threading.Event) -> None:
    """Pages appended one at a time (flushed), several files, as a microscope writes them."""
    for start in range(0, len(frames), per_file):
        with tifffile.TiffWriter(folder / f"file_{start:04d}.tif") as tw:
            for frame in frames[start:start + per_file]:
                tw.write(frame, contiguous=False, metadata=None)
                tw.filehandle.flush()
                time.sleep(0.004)
    done.set()


@pytest.mark.parametrize("per_file", [400, 150])
def test_followed_file_gives_the_same_traces_as_the_finished_file(tmp_path, movie, segmentation, per_file):
    expected, _ = _extract(SIM / "movie.tif", segmentation)
    live = tmp_path / "live"
    live.mkdir()
    done = threading.Event()
    writer = threading.Thread(target=_write_slowly, args=(movie, live, per_file, done))
    writer.start()
    src = ExtractionSource(live, segmentation, out=tmp_path / "live.h5", follow=True)
    parts, polls = [], 0
    deadline = time.monotonic() + 120
    while sum(len(p) for p in parts) < len(movie) and time.monotonic() < deadline:
        parts.append(src.poll())
        polls += 1
        time.sleep(0.002)
    writer.join()
    src.close()
    got = np.concatenate(parts)
    assert len([p for p in parts if len(p)]) > 10  # it really followed: frames in many batches as they came
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.asarray(load_recording(tmp_path / "live.h5").traces), expected)


def _cut(src: Path, dst: Path, keep_bytes_of_last: int = 1000) -> int:
    """Copy ``src`` with its last page's image data cut short; returns the number of complete pages."""
    with tifffile.TiffFile(src) as tif:
        last = tif.pages[-1]
        end = last.dataoffsets[0] + keep_bytes_of_last
        n = len(tif.pages)
    dst.write_bytes(src.read_bytes()[:end])
    return n - 1


def test_truncated_page_is_an_error_without_follow_and_waited_for_with_it(tmp_path, movie):
    full = tmp_path / "full.tif"
    with tifffile.TiffWriter(full) as tw:  # page by page: each IFD followed by its image data
        for frame in movie[:20]:
            tw.write(frame, contiguous=False, metadata=None)
    cut = tmp_path / "cut.tif"
    n_complete = _cut(full, cut)
    with pytest.raises(CorruptFile, match="page 19"):
        TiffFrames(cut).poll()
    follower = TiffFrames(cut, follow=True)
    assert len(follower.poll()) == n_complete
    assert "waiting" in follower.status and len(follower.poll()) == 0
    cut.write_bytes(full.read_bytes())  # the writer finishes the page
    last = follower.poll()
    assert len(last) == 1
    np.testing.assert_array_equal(last[0], movie[19])


def test_frame_size_different_from_the_segmentation_names_both(tmp_path, segmentation):
    path = tmp_path / "small.tif"
    tifffile.imwrite(path, np.zeros((5, 64, 80), np.uint16), photometric="minisblack")
    with pytest.raises(RecordingError, match=r"64 x 80 px.*128 x 128 px"):
        _extract(path, segmentation)
    assert main(["extract", str(path), "--rois", str(SIM / "suite2p"), "--out", str(tmp_path / "o.h5")]) == 2


def test_non_tiff_file_in_the_folder_is_ignored_with_a_note(tmp_path, movie):
    tifffile.imwrite(tmp_path / "a_001.tif", movie[:5], photometric="minisblack")
    (tmp_path / "a_002.txt").write_text("notes from the rig")
    tifffile.imwrite(tmp_path / "a_003.tif", movie[5:8], photometric="minisblack")
    frames = TiffFrames(tmp_path)
    got = frames.poll()
    assert len(got) == 8 and frames.finished
    assert frames.notes == ["ignored a_002.txt: not a TIFF file"]


def test_segmentation_without_reference_gets_one_from_the_first_frames(segmentation):
    no_ref = replace(segmentation, anatomy=None, provenance={**segmentation.provenance, "image_shape": (128, 128)})
    f, src = _extract(SIM / "movie.tif", no_ref, config=None)
    assert any("computed from the first 200 frames" in n for n in src.notes)
    assert f.shape == (400, 53)
    assert _median_r(f.T, np.load(PLANE / "F.npy")) >= 0.98


def test_segmentation_without_footprints_is_refused(tmp_path):
    rec = load_recording(SIM / "suite2p")
    path = save_recording(replace(rec, footprints=None, anatomy=None), tmp_path / "nofp.h5")
    with pytest.raises(RecordingError, match="no ROI footprints"):
        load_segmentation(path)


def test_interleaved_channels_keep_the_chosen_one(tmp_path, movie):
    both = np.empty((20, 128, 128), np.uint16)
    both[0::2], both[1::2] = movie[:10], 7
    tifffile.imwrite(tmp_path / "two.tif", both, metadata=None)
    frames = TiffFrames(tmp_path / "two.tif", n_channels=2, channel=0).poll()
    np.testing.assert_array_equal(frames, movie[:10])
    assert scanimage_layout({"SI.hChannels.channelSave": [1, 2], "SI.hStackManager.numSlices": 3,
                             "SI.hFastZ.enable": True, "SI.hRoiManager.scanVolumeRate": 9.5,
                             "SI.hRoiManager.scanFrameRate": 28.5}) == {"n_channels": 2, "n_planes": 3, "fs": 9.5}
    assert scanimage_layout({"SI.hChannels.channelSave": 1, "SI.hRoiManager.scanFrameRate": 30.0}) == {"n_channels": 1, "fs": 30.0}
    assert [StackLayout(2, 3, channel=1, plane=2).keeps(i) for i in range(12)] == [i in (5, 11) for i in range(12)]
    with pytest.raises(RecordingError, match="plane 3"):
        StackLayout(1, 2, plane=3)


def test_cli_extract_json_summary(tmp_path, capsys):
    out = tmp_path / "t.h5"
    assert main(["extract", str(SIM / "movie.tif"), "--rois", str(SIM / "suite2p"), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 400 and summary["rois"] == 53 and summary["fs"] == 30.0
    assert summary["shift_dy"][0] < -3 and summary["shift_dx"][1] > 1
    assert load_recording(out).n_frames == 400


def test_simulated_live_frames_round_trip(tmp_path):
    from poco_core.data.movie import movie_shifts

    folder = tmp_path / "frames"
    assert main(["simulate", "--live-frames", str(folder), "--rois", "40", "--frames", "120", "--fs", "600",
                 "--frames-per-file", "50", "--image-size", "96", "--seed", "3"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["frames_00000.tif", "frames_00050.tif", "frames_00100.tif"]
    out = tmp_path / "t.h5"
    assert main(["extract", str(folder), "--rois", str(tmp_path / "frames_rois.h5"), "--out", str(out)]) == 0
    with h5py.File(out) as h:
        shifts = h["per_frame/shift"][()]
    np.testing.assert_allclose(shifts, movie_shifts(120, 600, seed=3), atol=0.25)
    rec, truth = load_recording(out), load_recording(tmp_path / "frames_rois.h5")
    assert _median_r(np.asarray(rec.traces).T, np.asarray(truth.traces).T) > 0.5


def test_nwb_segmentation_gives_the_same_traces():
    seg = load_segmentation(SIM / "suite2p" / "ophys.nwb")  # suite2p's own NWB export: pixel masks + meanImg
    assert seg.n_rois == 53 and seg.image_shape == (128, 128)
    f, src = _extract(SIM / "movie.tif", seg)
    assert src.reference_from == "the segmentation's image"
    assert _median_r(f.T, np.load(PLANE / "F.npy")) >= 0.98


def test_a_page_that_stays_cut_while_later_files_arrive_stops_the_follower(tmp_path, movie):
    from poco_core.live.sources import LiveSourceError

    full = tmp_path / "full.tif"
    with tifffile.TiffWriter(full) as tw:
        for frame in movie[:5]:
            tw.write(frame, contiguous=False, metadata=None)
    folder = tmp_path / "frames"
    folder.mkdir()
    _cut(full, folder / "a_001.tif")
    tifffile.imwrite(folder / "a_002.tif", movie[5:10], photometric="minisblack")
    follower = TiffFrames(folder, follow=True, stall_timeout=0.0)
    assert len(follower.poll()) == 4  # the complete pages; the cut one is waited for once
    with pytest.raises(LiveSourceError, match="a_001.tif.*page 4 is incomplete.*writer probably stopped"):
        time.sleep(0.01)
        follower.poll()


def test_a_placeholder_rate_is_reported(tmp_path, segmentation):
    seg = replace(segmentation, fs=1.0, provenance={**segmentation.provenance, "fs_placeholder": True})
    _, src = _extract(SIM / "movie.tif", seg, out=tmp_path / "t.h5")
    assert any("frame rate unknown" in n for n in src.notes)
    _, src = _extract(SIM / "movie.tif", seg, out=tmp_path / "t.h5", fs=30.0)
    assert not any("frame rate unknown" in n for n in src.notes) and load_recording(tmp_path / "t.h5").fs == 30.0


def test_a_given_rate_creates_the_output_before_the_first_frame(tmp_path, movie, segmentation):
    """With fs given (``poco extract --fs``) the file is made while waiting, not on the first frame's clock."""
    live = tmp_path / "live"
    live.mkdir()
    src = ExtractionSource(live, segmentation, out=tmp_path / "live.h5", fs=7.5, follow=True)
    assert len(src.poll()) == 0 and (tmp_path / "live.h5").exists()
    tifffile.imwrite(live / "a.tif", movie[:5])
    got = src.poll()
    src.close()
    rec = load_recording(tmp_path / "live.h5")
    assert rec.fs == 7.5
    np.testing.assert_array_equal(np.asarray(rec.traces), got)
    assert len(got) == 5
    before = (tmp_path / "live.h5").read_bytes()  # an earlier output is not replaced before frames arrive
    (tmp_path / "empty").mkdir()
    again = ExtractionSource(tmp_path / "empty", segmentation, out=tmp_path / "live.h5", fs=7.5, follow=True)
    assert len(again.poll()) == 0
    again.close()
    assert (tmp_path / "live.h5").read_bytes() == before
