"""Small things a user trips on (issue 14): one-line repr, cell counts in `poco info`, one `snr`."""
import json
from pathlib import Path

from poco_core.cli.main import main
from poco_core.data.io import load_recording
from test_io_caiman import write_caiman

DATA = Path(__file__).parent / "data"


def test_repr_is_one_line():
    rec = load_recording(DATA / "suite2p_sim/suite2p/plane0")
    text = repr(rec)
    assert "\n" not in text and len(text) < 300
    assert "400 frames x 53 ROIs at 30 Hz" in text and "suite2p" in text


def test_info_counts_cells(capsys, tmp_path):
    assert main(["info", str(DATA / "suite2p_sim/suite2p/plane0"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cells"] == "48 of 53 (iscell)"
    write_caiman(tmp_path / "cnm.hdf5")
    assert main(["info", str(tmp_path / "cnm.hdf5")]) == 0
    assert "cells: 2 of 3 (accepted)" in capsys.readouterr().out


def test_suite2p_snr_keeps_its_own_name():
    rec = load_recording(DATA / "suite2p_sim/suite2p/plane0")
    assert "suite2p_snr" in rec.roi_info and "snr" not in rec.roi_info
