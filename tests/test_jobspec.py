"""The Qt-free job description and child entry point, run in-process over a real pipe."""
from __future__ import annotations

import multiprocessing as mp
import pickle
import subprocess
import sys

import pytest

from poco_core.data.io import save_recording
from poco_core.data.simulate import simulate_recording
from poco_core.training.jobs import JobSpec, RecordingRef, _BatchSender, run_job

GUI = ("qtpy", "PyQt5", "napari", "pyqtgraph", "superqt")


def test_spec_is_picklable_and_checked():
    spec = JobSpec("finetune", [RecordingRef("a.h5")], "out.pt", init_checkpoint="base.pt", mode="all")
    assert pickle.loads(pickle.dumps(spec)) == spec
    with pytest.raises(ValueError, match="init_checkpoint"):
        JobSpec("finetune", [], "out.pt")
    with pytest.raises(ValueError, match="mode"):
        JobSpec("train", [], "out.pt", mode="some")


def test_step_events_are_batched_the_rest_flush_at_once():
    sent = []
    sender = _BatchSender(type("Conn", (), {"send": lambda self, batch: sent.append(batch)})(), interval=60.0)
    for step in (1, 2, 3):
        sender.send({"type": "step", "step": step})
    assert sent == []
    sender.send({"type": "validation", "step": 3})
    assert [len(b) for b in sent] == [4]


def _drain(conn) -> list[dict]:
    events = []
    while True:
        try:
            events += conn.recv()
        except EOFError:
            return events


def test_run_job_streams_a_real_training_run(tmp_path):
    rec = save_recording(simulate_recording(n_rois=8, n_frames=500, seed=2), tmp_path / "rec.h5")
    spec = JobSpec("train", [RecordingRef(str(rec))], str(tmp_path / "run.pt"), model="nlinear",
                   context=8, horizon=4, steps=6, batch_size=4, val_every=3, device="cpu", threads=1, nice=0,
                   preprocess={"block_len": 100})
    recv, send = mp.Pipe(duplex=False)
    run_job(spec, send, mp.Event())
    events = _drain(recv)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("step") == 6
    assert (tmp_path / "run.pt").is_file()


def test_the_child_entry_point_imports_no_gui():
    code = f"import sys, poco_core.training.jobs; print([m for m in {GUI!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_failure_becomes_one_plain_error_event(tmp_path):
    spec = JobSpec("train", [RecordingRef(str(tmp_path / "missing.h5"))], str(tmp_path / "run.pt"), nice=0)
    recv, send = mp.Pipe(duplex=False)
    run_job(spec, send, mp.Event())
    events = _drain(recv)
    assert [e["type"] for e in events] == ["error"]
    assert "missing.h5" in events[0]["message"]
