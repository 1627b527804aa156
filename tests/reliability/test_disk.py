"""Full and read-only disks: exit 2 naming the path, the previous output intact, no temp file.

Uses a small tmpfs mounted for the test (root, as here and in CI); elsewhere the tests are
skipped with the reason.
"""
from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
from conftest import TRAIN_FAST, Snapshot


def _mount(point: Path, *opts: str) -> None:
    point.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(["size=2m", *opts]), "tmpfs", str(point)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); needs root or CAP_SYS_ADMIN")


def _fill(folder: Path) -> None:
    """Write a filler file until the file system is full (unbuffered, smaller and smaller writes)."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.fixture()
def disk(tmp_path):
    point = tmp_path / "mnt"
    _mount(point)
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _prefill(disk: Path, work: dict, name: str, source: Path | None) -> Path:
    out = disk / name
    if source is not None:
        out.write_bytes(source.read_bytes())
    _fill(disk)
    return out


@pytest.mark.parametrize("command", ["train", "evaluate", "forecast", "simulate"])
def test_full_disk_is_exit_2_and_keeps_the_previous_output(poco, work, disk, command):
    existing = {"train": work["ckpt"], "evaluate": None, "forecast": None, "simulate": work["rec2"]}[command]
    name = {"train": "m.pt", "evaluate": "t.csv", "forecast": "f.npz", "simulate": "s.h5"}[command]
    out = _prefill(disk, work, name, existing)
    if existing is None:  # a previous output of the command's own kind, written before the disk filled
        (disk / "filler").unlink()
        assert poco(*_args(command, work, out))[0] == 0
        _fill(disk)
    s = Snapshot(disk)
    code, _, err = poco(*_args(command, work, out), "--force")
    assert code == 2, err
    assert str(out) in err and ("disk is full" in err or "quota" in err)
    s.assert_unchanged(allow_new=False)


def _args(command: str, w: dict, out: Path) -> list:
    return {
        "train": ["train", w["rec1"], "--steps", "2", "--val-every", "1", "--out", out, *TRAIN_FAST],
        "evaluate": ["evaluate", w["ckpt"], w["rec1"], "--device", "cpu", "--out", out],
        "forecast": ["forecast", w["ckpt"], w["rec1"], "--t", "30", "--device", "cpu", "--out", out],
        "simulate": ["simulate", "--rois", "200", "--frames", "4000", "--out", out],
    }[command]


@pytest.fixture()
def ro_disk(tmp_path, work):
    point = tmp_path / "ro"
    _mount(point)
    (point / "m.pt").write_bytes(work["ckpt"].read_bytes())
    r = subprocess.run(["mount", "-o", "remount,ro", str(point)], capture_output=True, text=True)
    if r.returncode:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
        pytest.skip(f"cannot remount read-only ({r.stderr.strip()})")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.mark.parametrize("command", ["train", "evaluate", "forecast", "simulate"])
def test_read_only_disk_is_refused_before_any_work(poco, work, ro_disk, command, monkeypatch):
    import poco_core.training.restore as restore

    monkeypatch.setattr(restore, "load_checkpoint", lambda *a: pytest.fail("work began before the output was checked"))
    out = ro_disk / {"train": "m.pt", "evaluate": "t.csv", "forecast": "f.npz", "simulate": "s.h5"}[command]
    s = Snapshot(ro_disk)
    code, _, err = poco(*_args(command, work, out), "--force")
    assert code == 2 and str(out) in err and "read-only" in err
    s.assert_unchanged(allow_new=False)


def test_live_writer_on_a_read_only_disk(poco, ro_disk):
    code, _, err = poco("simulate", "--live", ro_disk / "live.h5", "--rois", "8", "--frames", "10", "--fs", "100")
    assert code == 2 and "live.h5" in err and "read-only" in err
