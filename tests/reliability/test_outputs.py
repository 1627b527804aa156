"""Data loss: --out never destroys an input or a file of another kind; same kind needs --force;
writes are atomic and leave no temp files; stale temp files of dead writers are removed."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import TRAIN_FAST

from poco_core.base.errors import PocoError
from poco_core.base.outputs import (
    OutputError,
    atomic_path,
    claim_output,
    clean_stale_temps,
    output_kind,
    write_text,
)
from poco_core.training.restore import load_model


def _cmd(kind: str, w: dict, out: Path) -> list:
    return {
        "train": ["train", w["rec1"], "--steps", "2", "--val-every", "1", "--out", out, *TRAIN_FAST],
        "finetune": ["finetune", w["ckpt"], w["rec2"], "--steps", "1", "--val-every", "1", "--out", out, "--device", "cpu",
                     "--batch-size", "8", "--max-val-windows", "8"],
        "evaluate": ["evaluate", w["ckpt"], w["rec1"], "--device", "cpu", "--out", out],
        "forecast": ["forecast", w["ckpt"], w["rec1"], "--t", "20", "--device", "cpu", "--out", out],
        "embed": ["embed", w["ckpt"], w["rec1"], "--clusters", "2", "--out", out],
        "simulate": ["simulate", "--rois", "8", "--frames", "100", "--out", out],
    }[kind]


COMMANDS = ["train", "finetune", "evaluate", "forecast", "embed", "simulate"]


@pytest.mark.parametrize("command", COMMANDS)
def test_out_onto_a_recording_is_refused(poco, work, snap, command):
    """`--out rec.h5` with rec.h5 a recording (an input of most of these commands): exit 2, untouched."""
    s = snap()
    target = work["rec1"] if command != "evaluate" else work["rec2"]
    code, _, err = poco(*_cmd(command, work, target))
    assert code == 2, err
    assert str(target) in err and ("input" in err or "not" in err or "--force" in err)
    s.assert_unchanged()


@pytest.mark.parametrize("command", ["train", "evaluate", "forecast", "embed"])
def test_out_onto_the_checkpoint_input_is_refused(poco, work, snap, command):
    s = snap()
    code, _, err = poco(*_cmd(command, work, work["ckpt"]))
    assert code == 2 and str(work["ckpt"]) in err
    s.assert_unchanged()


@pytest.mark.parametrize("command,name", [("train", "m.pt"), ("evaluate", "t.csv"), ("forecast", "f.npz"),
                                          ("simulate", "sim.h5")])
def test_same_kind_needs_force(poco, work, snap, command, name):
    """A first run writes; the second without --force is exit 2 naming the file; with --force it replaces."""
    out = work["dir"] / name
    assert poco(*_cmd(command, work, out))[0] == 0
    s = snap()
    code, _, err = poco(*_cmd(command, work, out))
    assert code == 2 and str(out) in err and "--force" in err
    s.assert_unchanged()
    assert poco(*_cmd(command, work, out), "--force")[0] == 0


def test_force_never_replaces_another_kind(poco, work, snap):
    notes = work["dir"] / "notes.pt"
    notes.write_bytes(b"\x00\x01binary notes, not a checkpoint")
    s = snap()
    code, _, err = poco(*_cmd("train", work, notes), "--force")
    assert code == 2 and str(notes) in err and "poco will not replace" in err
    s.assert_unchanged()


def test_force_never_replaces_an_input(poco, work, snap):
    s = snap()
    code, _, err = poco("simulate", "--live", work["rec1"], "--replay", work["rec1"], "--force")
    assert code == 2 and str(work["rec1"]) in err
    s.assert_unchanged()


def test_resume_onto_its_own_checkpoint_needs_no_force(poco, work):
    ckpt = work["dir"] / "r.pt"
    assert poco(*_cmd("train", work, ckpt))[0] == 0
    code, _, err = poco("train", work["rec1"], "--steps", "3", "--val-every", "1", "--out", ckpt, "--resume", ckpt,
                        *TRAIN_FAST)
    assert code == 0, err
    assert load_model(ckpt).poco_meta.step >= 2


def test_out_is_a_folder(poco, work, snap):
    (work["dir"] / "runs").mkdir()
    s = snap()
    code, _, err = poco(*_cmd("train", work, work["dir"] / "runs"))
    assert code == 2 and "runs" in err
    s.assert_unchanged()


def test_cohort_into_a_file_is_refused(poco, work, snap):
    s = snap()
    code, _, err = poco("simulate", "--sessions", "2", "--rois", "8", "--frames", "100", "--out", work["rec1"])
    assert code == 2 and str(work["rec1"]) in err
    s.assert_unchanged()


def test_cohort_over_an_existing_cohort_needs_force(poco, tmp_path):
    args = ["simulate", "--sessions", "2", "--rois", "8", "--frames", "100", "--out", tmp_path / "c"]
    assert poco(*args)[0] == 0
    code, _, err = poco(*args)
    assert code == 2 and "--force" in err and "fish01.h5" in err
    assert poco(*args, "--force")[0] == 0


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    """An exception half-way through a write leaves the previous file and no temp file."""
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old\n" and sorted(tmp_path.iterdir()) == [target]


def test_outputs_respect_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = write_text(tmp_path / "x.csv", "a\n")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


def test_stale_temps_of_dead_writers_are_cleaned(tmp_path):
    dead = tmp_path / ".m.pt.999999999.abcd.poco.tmp"  # no such pid
    mine = tmp_path / f".m.pt.{os.getpid()}.abcd.poco.tmp"
    foreign = tmp_path / ".m.pt.tmp"  # not named by this program: left alone
    for p in (dead, mine, foreign):
        p.write_bytes(b"x")
    assert clean_stale_temps(tmp_path) == [dead]
    assert mine.exists() and foreign.exists() and not dead.exists()


def test_claim_cleans_stale_temps_next_to_the_output(tmp_path):
    dead = tmp_path / ".out.npz.999999999.zz.poco.tmp"
    dead.write_bytes(b"x" * 100)
    claim_output(tmp_path / "out.npz", "npz")
    assert not dead.exists()


@pytest.mark.parametrize("content,kind", [(b"model,session\n", "text"), (b"\x89HDF\r\n\x1a\n" + b"\0" * 8, "other"),
                                          (b"\xff\xfe\x00binary", "other")])
def test_output_kind_sniffs_content_not_names(tmp_path, content, kind):
    p = tmp_path / "x.pt"
    p.write_bytes(content)
    assert output_kind(p) == kind


def test_policy_error_is_a_poco_error(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(OutputError) as info:
        claim_output(tmp_path / "a.txt", "npz")
    assert isinstance(info.value, PocoError) and "a.txt" in str(info.value)


def test_forecast_writes_exactly_the_named_npz(poco, work):
    out = work["dir"] / "fc"  # no .npz suffix: numpy would have written fc.npz
    assert poco(*_cmd("forecast", work, out))[0] == 0
    assert out.exists() and not (work["dir"] / "fc.npz").exists()
    assert np.load(out)["z"].ndim == 3


@pytest.mark.parametrize("link", ["symlink_to", "hardlink_to"])
def test_an_input_reached_through_a_link_is_refused(poco, work, snap, link):
    alias = work["dir"] / "table.csv"
    getattr(alias, link)(work["ckpt"])
    s = snap()
    code, _, err = poco("evaluate", work["ckpt"], work["rec1"], "--out", alias, "--force")
    assert code == 2 and str(alias) in err and "input" in err
    s.assert_unchanged()


def test_out_may_go_into_an_input_folder(poco, work):
    """Writing next to the recordings is fine (only the inputs themselves are protected), and the
    run's hidden lock file is not mistaken for a recording of the folder."""
    code, _, err = poco("train", work["dir"], "--steps", "1", "--val-every", "1", "--out", work["dir"] / "new.pt",
                        *TRAIN_FAST)
    assert code == 0, err
    assert set(load_model(work["dir"] / "new.pt").poco_meta.fingerprints) == {"fish01", "fish02"}
