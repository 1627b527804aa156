"""GUI jobs start cleanly from a user's script with or without a ``__main__`` guard, and a
child that dies says why (its stderr), not only its exit code."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from poco_core.data.simulate import simulate_recording
from poco_napari.jobs import JobStatus, make_job

REPO = Path(__file__).resolve().parents[2]

# a napari-example-style script: no `if __name__ == "__main__":` guard
UNGUARDED = textwrap.dedent("""
    import sys
    from pathlib import Path

    with Path(sys.argv[1]).open("a") as f:
        f.write("script ran\\n")
    from qtpy.QtWidgets import QApplication
    from poco_core.data.simulate import simulate_recording
    from poco_napari.jobs import make_job

    app = QApplication([])
    job = make_job("train", [simulate_recording(n_rois=8, n_frames=300, seed=0)], checkpoint=sys.argv[2],
                   model="nlinear", context=8, horizon=2, steps=3, batch_size=4, val_every=3, threads=1,
                   device="cpu", preprocess={"block_len": 60})
    job.finished.connect(app.quit)
    job.start()
    app.exec()
    print("STATUS", job.status.value, job.message)
""")


def test_job_from_a_script_without_main_guard(tmp_path):
    script, marker, ckpt = tmp_path / "user_script.py", tmp_path / "ran.txt", tmp_path / "run.pt"
    script.write_text(UNGUARDED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(script), str(marker), str(ckpt)], capture_output=True,
                         text=True, timeout=240, env=env, cwd=tmp_path)
    assert "STATUS done" in out.stdout, out.stdout + out.stderr
    assert marker.read_text().count("script ran") == 1  # the child did not run the script again
    assert ckpt.is_file()


def test_a_child_that_dies_shows_its_stderr(qtbot, tmp_path):
    # a fractional niceness makes os.nice raise in the child before the job's own error reporting starts
    job = make_job("train", [simulate_recording(n_rois=6, n_frames=200, seed=0)], checkpoint=str(tmp_path / "x.pt"),
                   model="nlinear", context=8, horizon=2, steps=2, device="cpu", nice=0.5)
    with qtbot.waitSignal(job.finished, timeout=120_000):
        job.start()
    assert job.status is JobStatus.FAILED
    assert "exited with code 1" in job.message
    assert "cannot be interpreted as an integer" in job.message


def test_the_child_entry_imports_no_gui():
    code = "import sys, poco_napari.job_child; print([m for m in ('qtpy', 'napari', 'PyQt6', 'PyQt5') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "[]"
