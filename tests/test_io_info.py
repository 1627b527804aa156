"""`poco info --json` on each format's test file, and exit code 2 with the message on bad input."""
import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from test_io_caiman import write_caiman
from test_io_h5 import make_recording
from test_io_nwb import write_nwb

from poco_core.base.errors import PocoError
from poco_core.cli import info
from poco_core.data.io import save_recording

DATA = Path(__file__).parent / "data"


def poco_info(*argv: str) -> int:
    """Run the info command as the `poco` dispatcher does (PocoError -> exit 2)."""
    parser = argparse.ArgumentParser(prog="poco")
    info.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["info", *map(str, argv)])
    try:
        return args.func(args)
    except PocoError:
        return 2


def info_json(capsys, *argv) -> dict:
    assert poco_info(*argv, "--json") == 0
    return json.loads(capsys.readouterr().out)


def test_suite2p(capsys):
    out = info_json(capsys, DATA / "suite2p_fissa")
    assert (out["format"], out["frames"], out["rois"], out["fs"], out["anatomy_shape"]) == ("suite2p", 864, 23, 1.0, [176, 156])
    assert out["duration_s"] == 864.0 and any("placeholder" in p for p in out["problems"])


def test_triplett(capsys):
    out = info_json(capsys, DATA / "triplett_zf_20170215-f3", "--fs", "2")
    assert (out["format"], out["frames"], out["rois"], out["duration_s"], out["problems"]) == ("triplett", 300, 20, 150.0, [])


def test_nwb(capsys, tmp_path):
    write_nwb(tmp_path / "s.nwb")
    out = info_json(capsys, tmp_path / "s.nwb", "--series", "DfOverF/dff")
    assert (out["format"], out["frames"], out["rois"], out["fs"]) == ("nwb", 120, 4, 7.5)
    assert out["regions"] == {"optic tectum": 4} and out["series_choices"] == ["Fluorescence/raw", "DfOverF/dff"]


def test_caiman(capsys, tmp_path):
    write_caiman(tmp_path / "c.hdf5")
    out = info_json(capsys, tmp_path / "c.hdf5")
    assert (out["format"], out["frames"], out["rois"], out["fs"], out["image_shape"]) == ("caiman", 80, 3, 10.0, [6, 5])


def test_project_h5_reports_short_and_flat(capsys, tmp_path):
    rec = make_recording(t=50)
    rec.traces[:, 2] = 1.0
    save_recording(rec, tmp_path / "r.h5")
    out = info_json(capsys, tmp_path / "r.h5")
    assert out["regions"] == {"A": 2, "B": 2} and out["fs"] == 20.0
    assert any("1 zero-variance ROIs: c2" in p for p in out["problems"])
    assert any("too short for a 64-frame window (50 frames)" in p for p in out["problems"])


def test_plain_with_nans_reported(capsys, tmp_path):
    traces = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    traces[7, 1] = np.nan
    np.save(tmp_path / "a.npy", traces)
    out = info_json(capsys, tmp_path / "a.npy", "--fs", "10")
    assert any("NaN/Inf values in frames 7" in p for p in out["problems"])
    (tmp_path / "t.csv").write_text("1,2\n3,4\n" * 40)
    assert info_json(capsys, tmp_path / "t.csv", "--fs", "1")["rois"] == 2


@pytest.mark.parametrize("content", [b"", b"\x89HDF\r\n\x1a\ngarbage"])
def test_bad_input_exits_2(tmp_path, content):
    (tmp_path / "x.h5").write_bytes(content)
    assert poco_info(tmp_path / "x.h5") == 2
