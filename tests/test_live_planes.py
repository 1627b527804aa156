"""All planes of a volumetric acquisition as one recording (issue 19): each plane registered and
extracted with its own segmentation, the ROIs of all planes in one recording, images tiled."""
from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from extract_support import drain

from poco_core.base.errors import RecordingError
from poco_core.cli.main import main
from poco_core.data.io import load_recording, save_recording
from poco_core.data.movie import movie_segmentation, render_frames
from poco_core.data.simulate import simulate_recording
from poco_core.live.extract import ExtractionSource
from poco_core.live.frames import TiffFrames
from poco_core.live.planes import GAP_PX, plane_segmentations, tile_planes

SIM = Path(__file__).parent / "data" / "suite2p_sim" / "suite2p"
SHAPE = (48, 56)


@pytest.fixture(scope="module")
def planes(tmp_path_factory):
    """Two planes (different ROIs, 30 and 25 of them), their segmentations, and a 2-plane movie in two files."""
    folder = tmp_path_factory.mktemp("planes")
    recs = [simulate_recording(n, 40, regions=2, seed=s, fs=10.0, image_shape=SHAPE, session=f"p{s}")
            for n, s in ((30, 1), (25, 2))]
    segs = [movie_segmentation(r) for r in recs]
    movies = [np.stack([f for f, _ in render_frames(r, seed=k)]) for k, r in enumerate(recs)]
    volume_pages = np.stack(movies, axis=1).reshape(-1, *SHAPE)  # plane 0 then plane 1, volume after volume
    (folder / "frames").mkdir()
    tifffile.imwrite(folder / "frames" / "a_000.tif", volume_pages[:30], metadata=None)
    tifffile.imwrite(folder / "frames" / "a_001.tif", volume_pages[30:], metadata=None)
    for k, m in enumerate(movies):
        tifffile.imwrite(folder / f"plane{k}.tif", m, metadata=None)
    paths = [save_recording(s, folder / f"seg{k}.h5") for k, s in enumerate(segs)]
    return folder, segs, paths


def test_every_plane_is_extracted_with_its_own_segmentation_into_one_recording(planes, tmp_path):
    folder, segs, paths = planes
    out = tmp_path / "all.h5"
    src = ExtractionSource(folder / "frames", paths, out=out, follow=False, plane=None, n_planes=2)
    f = drain(src)
    alone = [drain(ExtractionSource(folder / f"plane{k}.tif", segs[k], follow=False)) for k in range(2)]
    assert f.shape == (40, 55)  # 40 volumes, 30 + 25 ROIs
    np.testing.assert_allclose(f, np.concatenate(alone, axis=1), rtol=1e-5)
    rec = load_recording(out)
    assert rec.n_frames == 40 and rec.image_shape == (SHAPE[0], 2 * SHAPE[1] + GAP_PX)
    assert list(rec.roi_ids[:2]) == ["plane0_roi0000", "plane0_roi0001"] and rec.roi_ids[30] == "plane1_roi0000"
    assert rec.roi_info["plane"].tolist() == [0] * 30 + [1] * 25
    with h5py.File(out) as h:
        assert h["per_frame/shift"].shape == (40, 4) and h["per_frame/peak"].shape == (40, 2)
    # plane 1's footprints sit in the right-hand tile, where its image is
    fp1 = rec.footprints[30:].tocoo()
    assert (fp1.col % rec.image_shape[1]).min() >= SHAPE[1] + GAP_PX
    np.testing.assert_allclose(rec.anatomy[:, SHAPE[1] + GAP_PX:], src.extractor.planes[1].reference, rtol=1e-5)


def test_volumes_wait_for_their_last_plane(planes, tmp_path):
    folder, _, _ = planes
    pages = tifffile.imread(folder / "frames" / "a_000.tif")
    tifffile.imwrite(tmp_path / "odd.tif", pages[:7], metadata=None)  # 3 volumes and one plane of a 4th
    frames = TiffFrames(tmp_path / "odd.tif", plane=None, n_planes=2)
    got = frames.poll()
    assert got.shape == (3, 2, *SHAPE)
    np.testing.assert_array_equal(got[1, 1], pages[3])
    assert frames.finished and any("incomplete volume (1 of 2 planes)" in n for n in frames.notes)


def test_plane_count_and_sizes_are_checked(planes, tmp_path):
    folder, segs, paths = planes
    with pytest.raises(RecordingError, match="volumes have 3 planes but 2 plane segmentations"):
        drain(ExtractionSource(folder / "frames", paths, follow=False, plane=None, n_planes=3))
    with pytest.raises(RecordingError, match="one segmentation per plane"):
        ExtractionSource(folder / "frames", paths[0], follow=False, plane=None, n_planes=2)


def test_suite2p_plane_folders_are_the_planes(tmp_path):
    root = tmp_path / "suite2p"
    for k in range(2):
        shutil.copytree(SIM / "plane0", root / f"plane{k}")
    from poco_core.live.extract import load_segmentation

    recs = plane_segmentations(root, load_segmentation)
    assert len(recs) == 2 and recs[0].session.endswith("_plane0") and recs[1].session.endswith("_plane1")
    tiled = tile_planes(recs)
    assert tiled.session == recs[0].session[:-len("_plane0")] and tiled.n_rois == 2 * recs[0].n_rois
    assert tiled.roi_info["iscell"].shape == (tiled.n_rois,)  # the planes' own columns are kept


def test_cli_extract_all_planes(planes, tmp_path, capsys):
    folder, _, paths = planes
    out = tmp_path / "cli.h5"
    args = ["extract", str(folder / "frames"), "--rois", str(paths[0]), "--rois", str(paths[1]), "--planes", "2",
            "--out", str(out), "--json"]
    assert main([*args, "--plane", "all"]) == 0
    assert load_recording(out).n_rois == 55
    assert main([*args, "--plane", "0"]) == 2
    assert "need --plane all" in capsys.readouterr().err
