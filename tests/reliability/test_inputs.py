"""Unclear or silently ignored input: every user error is exit 2 with one message naming the input
and the fix, found before data is loaded; options that cannot apply say so."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import POCO_CMD, TRAIN_FAST, subprocess_env


@pytest.mark.parametrize("option,value", [("--batch-size", "0"), ("--lr", "-1"), ("--val-every", "0"),
                                          ("--steps", "-3"), ("--lr", "nan"), ("--block-len", "0"),
                                          ("--max-val-windows", "0")])
def test_bad_loop_numbers_are_usage_errors(poco, work, snap, option, value):
    s = snap()
    code, _, err = poco("train", work["rec1"], "--out", work["dir"] / "m.pt", *TRAIN_FAST, option, value)
    assert code == 2 and option in err and value in err
    s.assert_unchanged()


@pytest.mark.parametrize("sets,needle", [(["--set", "hidden=abc"], "hidden"), (["--set", "no_such_field=3"], "no_such_field"),
                                         (["--set", "hidden=-4"], "hidden")])
def test_bad_set_values_are_reported_before_loading_data(poco, tmp_path, sets, needle):
    missing = tmp_path / "not_there.h5"  # the --set error must come first: data is never looked at
    code, _, err = poco("train", missing, "--out", tmp_path / "m.pt", *sets)
    assert code == 2 and needle in err and "--set" in err and "not_there" not in err


def test_unknown_model_is_reported_before_loading_data(poco, tmp_path):
    code, _, err = poco("train", tmp_path / "none.h5", "--out", tmp_path / "m.pt", "--model", "pocoo")
    assert code == 2 and "pocoo" in err


@pytest.mark.parametrize("args", [["--fs", "-5"], ["--fs", "0"]])
def test_live_fs_must_be_positive(poco, work, args):
    code, _, err = poco("live", work["rec1"], *args, "--seconds", "0.1")
    assert code == 2 and "--fs" in err


def test_simulate_live_fs_zero_is_refused(poco, tmp_path):
    code, _, err = poco("simulate", "--live", tmp_path / "x.h5", "--fs", "0")
    assert code == 2 and "--fs" in err and not (tmp_path / "x.h5").exists()


def test_replay_api_zero_rate_is_refused_not_replaced_by_the_file_rate(tmp_path, work):
    from poco_core.base.errors import PocoError
    from poco_core.data.io import load_recording
    from poco_core.live.replay import replay

    with pytest.raises(PocoError, match="positive"):
        replay(load_recording(work["rec1"]), tmp_path / "x.h5", fs=0)


def test_text_fs_in_npz(poco, tmp_path):
    path = tmp_path / "t.npz"
    np.savez(path, traces=np.random.default_rng(0).normal(size=(200, 5)).astype(np.float32), fs=np.array("fast"))
    code, _, err = poco("info", path)
    assert code == 2 and str(path) in err and "not a number" in err


def test_text_fs_in_project_h5(poco, work, snap):
    import h5py

    with h5py.File(work["rec1"], "a") as f:
        f.attrs["fs"] = "thirty"
    s = snap()
    code, _, err = poco("info", work["rec1"])
    assert code == 2 and str(work["rec1"]) in err
    s.assert_unchanged()


def _edit_ops(folder: Path, change) -> Path:
    path = folder / "suite2p" / "plane0" / "ops.npy"
    ops = np.load(path, allow_pickle=True).item()
    change(ops)
    np.save(path, np.array(ops, dtype=object), allow_pickle=True)
    return path


def test_text_fs_in_suite2p_ops(poco, suite2p):
    path = _edit_ops(suite2p, lambda ops: ops.update(fs="30 Hz"))
    code, _, err = poco("info", suite2p)
    assert code == 2 and str(path) in err and "not a number" in err


def test_suite2p_1x_ops_without_fs_reads_settings(poco, suite2p):
    _edit_ops(suite2p, lambda ops: ops.pop("fs"))
    code, out, err = poco("info", suite2p, "--json")
    info = json.loads(out)
    assert code == 0 and info["fs"] == 30.0 and not any("placeholder" in p for p in info["problems"])


@pytest.mark.parametrize("entry,needle", [({"path": 5}, "'path'"), ({"path": "a.h5", "fs": "fast"}, "'fs'"),
                                          ({"path": "a.h5", "session": ["x"]}, "'session'"),
                                          ({"path": "a.h5", "fs": -2}, "'fs'")])
def test_wrong_manifest_types(poco, work, entry, needle):
    manifest = work["dir"] / "m.json"
    manifest.write_text(json.dumps({"sessions": [entry]}))
    code, _, err = poco("train", manifest, "--out", work["dir"] / "m.pt", *TRAIN_FAST)
    assert code == 2 and str(manifest) in err and needle in err


def test_manifest_sessions_not_a_list(poco, work):
    manifest = work["dir"] / "m.yaml"
    manifest.write_text("sessions: fish01.h5\n")
    code, _, err = poco("train", manifest, "--out", work["dir"] / "m.pt", *TRAIN_FAST)
    assert code == 2 and str(manifest) in err and "sessions" in err


def test_neuropil_coef_without_fneu_warns(poco, work):
    code, _, err = poco("train", work["rec1"], "--steps", "1", "--val-every", "1", "--out", work["dir"] / "m.pt",
                        "--neuropil-coef", "0.7", *TRAIN_FAST)
    assert code == 0 and "--neuropil-coef has no effect" in err and str(work["rec1"]) in err


def test_iscell_only_without_iscell_warns(poco, work):
    code, _, err = poco("train", work["rec1"], "--steps", "1", "--val-every", "1", "--out", work["dir"] / "m.pt",
                        "--iscell-only", *TRAIN_FAST)
    assert code == 0 and "--iscell-only has no effect" in err


def test_info_on_a_fifo_refuses_instead_of_hanging(tmp_path):
    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    r = subprocess.run([*POCO_CMD, "info", str(fifo)], capture_output=True, text=True, timeout=60, env=subprocess_env())
    assert r.returncode == 2 and str(fifo) in r.stderr and "pipe" in r.stderr


def test_info_on_a_device_refuses(poco):
    code, _, err = poco("info", "/dev/zero")
    assert code == 2 and "/dev/zero" in err


def test_missing_input_names_it(poco, tmp_path):
    code, _, err = poco("evaluate", tmp_path / "nope.pt", tmp_path / "nope.h5")
    assert code == 2 and "nope" in err


def test_unexpected_oserror_is_exit_2_naming_the_path(poco, work, monkeypatch):
    import poco_core.cli.info as info

    def boom(*a, **k):
        raise PermissionError(13, "Permission denied", str(work["rec1"]))

    monkeypatch.setattr(info, "load_recording", boom)
    code, _, err = poco("info", work["rec1"])
    assert code == 2 and str(work["rec1"]) in err and "permission" in err.lower()


def test_napari_reader_never_raises(tmp_path, monkeypatch):
    pytest.importorskip("napari")
    import poco_napari.reader as reader

    shown = []
    monkeypatch.setattr(reader, "show_error", shown.append)
    monkeypatch.setattr(reader, "read_recordings", lambda p: (_ for _ in ()).throw(IndexError("reader bug")))
    assert reader.read_paths(str(tmp_path)) == reader.NOTHING
    assert shown and "IndexError" in shown[0] and tmp_path.name in shown[0]



@pytest.mark.parametrize("fs", [0.0, -5.0])
def test_live_source_api_refuses_non_positive_fs(tmp_path, fs):
    from poco_core.live.sources import LiveSourceError, open_source

    with pytest.raises(LiveSourceError, match="positive"):
        open_source(tmp_path, fs=fs)


def test_a_checkpoint_given_as_a_recording_is_named(poco, work, snap):
    s = snap()
    code, _, err = poco("info", work["ckpt"])
    assert code == 2 and str(work["ckpt"]) in err and "checkpoint" in err
    s.assert_unchanged()
