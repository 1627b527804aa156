"""Cancel semantics and concurrent writers, with real `poco train` processes on tiny data:
SIGTERM behaves like the first Ctrl-C (best kept, or current weights with a note; exit 130),
SIGKILL never leaves a broken checkpoint, and a second writer of the same output is refused."""
from __future__ import annotations

import json
import signal
import subprocess

import pytest
import torch
from conftest import POCO_CMD, TRAIN_FAST, subprocess_env

from poco_core.base.errors import PocoError
from poco_core.base.outputs import OutputLock
from poco_core.training.checkpoint import load_checkpoint
from poco_core.training.restore import load_model


def _start(rec, out, *extra) -> subprocess.Popen:
    cmd = [*POCO_CMD, "train", str(rec), "--steps", "100000", "--out", str(out), "--json", *TRAIN_FAST, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())


def _read_until(proc: subprocess.Popen, predicate) -> list[dict]:
    events = []
    for line in proc.stdout:
        events.append(json.loads(line))
        if predicate(events[-1], events):
            return events
    raise AssertionError(f"the run ended early: {proc.wait()} {proc.stderr.read()}")


def _finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, list[dict], str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, [json.loads(x) for x in out.splitlines() if x.strip()], err


def _sigterm_after(work: dict, val_every: str, *waits) -> tuple[int, list[dict], str]:
    """Train into m.pt, read events until each predicate in turn has matched, SIGTERM, collect the rest."""
    proc = _start(work["rec1"], work["dir"] / "m.pt", "--val-every", val_every)
    try:
        for wait in waits:
            _read_until(proc, wait)
        proc.send_signal(signal.SIGTERM)
        return _finish(proc)
    finally:
        proc.kill()


@pytest.mark.slow
def test_sigterm_after_validation_keeps_the_best_and_exits_130(work, snap):
    s, out = snap(), work["dir"] / "m.pt"
    code, events, err = _sigterm_after(work, "3", lambda e, _: e["type"] == "checkpoint", lambda e, _: e["type"] == "step")
    assert code == 130 and "SIGTERM" in err
    done = events[-1]
    assert done["type"] == "done" and done["cancelled"] and done["checkpoint"] == str(out)
    assert "kept the best checkpoint" in done["note"] and done["test"] == {}  # no test scoring after a cancel
    model = load_model(out)
    assert model.poco_meta.step == done["best_step"] and model.poco_meta.step % 3 == 0
    s.assert_unchanged()


@pytest.mark.slow
def test_sigterm_before_any_validation_saves_current_weights_with_a_note(work, snap):
    s, out = snap(), work["dir"] / "m.pt"
    code, events, err = _sigterm_after(work, "100000", lambda e, _: e["type"] == "step" and e["step"] >= 3)
    assert code == 130, err
    ckpt = load_checkpoint(out)
    assert "before any validation" in ckpt["note"] and ckpt["step"] >= 3
    assert any(e["type"] == "checkpoint" and "note" in e for e in events)
    s.assert_unchanged()


@pytest.mark.slow
def test_sigkill_mid_run_leaves_a_loadable_checkpoint_and_the_next_run_cleans_up(poco, work, snap):
    out = work["dir"] / "m.pt"
    out.write_bytes(work["ckpt"].read_bytes())
    before = out.read_bytes()
    proc = _start(work["rec1"], out, "--val-every", "1", "--force")
    try:
        _read_until(proc, lambda e, evs: sum(x["type"] == "checkpoint" for x in evs) >= 2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    d = load_checkpoint(out)  # the old file or a complete new one, never a torn one
    assert out.read_bytes() == before or d["step"] >= 1
    code, _, err = poco("train", work["rec1"], "--steps", "1", "--val-every", "1", "--out", out, "--force", *TRAIN_FAST)
    assert code == 0, err  # the dead run's lock does not block, its temp files are removed
    left = [p.name for p in work["dir"].iterdir() if p.name.endswith((".tmp", ".lock"))]
    assert left == []


@pytest.mark.slow
def test_second_train_on_the_same_out_is_refused_naming_the_first(poco, work, snap):
    out = work["dir"] / "m.pt"
    proc = _start(work["rec1"], out, "--val-every", "50")
    try:
        _read_until(proc, lambda e, _: e["type"] == "step")
        s = snap()
        code, _, err = poco("train", work["rec2"], "--steps", "2", "--out", out, "--force", *TRAIN_FAST)
        assert code == 2 and str(out) in err and f"pid {proc.pid}" in err
        proc.send_signal(signal.SIGTERM)
        assert _finish(proc)[0] == 130
    finally:
        proc.kill()
    s.hashes.pop(out.with_name(".m.pt.lock"), None)
    s.hashes = {p: h for p, h in s.hashes.items() if p.exists() and p != out}
    s.assert_unchanged()


def test_lock_is_exclusive_across_descriptors_and_names_the_holder(tmp_path):
    first = OutputLock(tmp_path / "x.pt").acquire()
    try:
        with pytest.raises(PocoError, match=r"x\.pt.*pid \d+"):
            OutputLock(tmp_path / "x.pt").acquire()
    finally:
        first.release()
    with OutputLock(tmp_path / "x.pt"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_train_refused_while_another_writer_holds_the_lock(poco, work, snap):
    out = work["dir"] / "m.pt"
    s = snap()
    with OutputLock(out):
        code, _, err = poco("train", work["rec1"], "--steps", "1", "--out", out, *TRAIN_FAST)
    assert code == 2 and str(out) in err and "another poco process" in err
    s.assert_unchanged()


def test_two_live_writers_on_one_file_second_refused(work, snap):
    from poco_core.data.io import load_recording
    from poco_core.live.replay import H5LiveWriter

    rec = load_recording(work["rec1"])
    live = work["dir"] / "live.h5"
    with H5LiveWriter(live, rec) as w:
        w.append(rec.traces[:5])
        s = snap()
        with pytest.raises(PocoError, match="live.h5.*another poco process"):
            H5LiveWriter(live, rec)
        w.append(rec.traces[5:10])
    s.hashes.pop(live, None)
    s.hashes = {p: h for p, h in s.hashes.items() if p.exists()}
    s.assert_unchanged()
    assert load_recording(live).n_frames == 10  # the first writer's frames all landed in the visible file


def test_simulate_live_refused_while_a_writer_holds_the_file(poco, work):
    from poco_core.data.io import load_recording
    from poco_core.live.replay import H5LiveWriter

    live = work["dir"] / "live.h5"
    with H5LiveWriter(live, load_recording(work["rec1"])):
        code, _, err = poco("simulate", "--live", live, "--rois", "12", "--frames", "20", "--fs", "100", "--force")
    assert code == 2 and str(live) in err


def test_gui_job_child_treats_sigterm_as_cancel():
    import os

    from poco_core.base.events import CancelToken
    from poco_core.training.jobs import _cancel_on_sigterm

    previous = signal.getsignal(signal.SIGTERM)
    try:
        token = _cancel_on_sigterm(CancelToken())
        assert not token.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert token.is_set()
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_best_state_is_kept_in_memory_not_reread(tmp_path):
    """Another writer replacing the checkpoint mid-run must not change what the run scores and stamps."""
    from conftest import TINY, tiny_cohort

    from poco_core.data.preprocess import PreprocessConfig
    from poco_core.training.checkpoint import save_checkpoint
    from poco_core.training.train import train_events

    out = tmp_path / "m.pt"
    events = train_events(list(tiny_cohort()[:1]), "poco", checkpoint=out, steps=2, val_every=2, batch_size=8,
                          max_val_windows=8, device="cpu", preprocess=PreprocessConfig(block_len=200),
                          model_config=TINY)
    for e in events:
        if e["type"] == "checkpoint":
            best = load_checkpoint(out)
            bogus = {**best, "model": {**best["model"], "state_dict": {k: torch.zeros_like(v) for k, v in
                                                                       best["model"]["state_dict"].items()}}}
            save_checkpoint(out, bogus)  # what a second, unlocked writer would have done
    final = load_checkpoint(out)
    assert any(bool(v.abs().sum() > 0) for v in final["model"]["state_dict"].values())
