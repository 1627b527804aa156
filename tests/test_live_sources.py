"""Live sources: every frame once and in order, from another process, a chunk folder or Python code."""
from __future__ import annotations

import multiprocessing as mp
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from poco_core.data.io import save_recording
from poco_core.data.recording import Recording
from poco_core.live import H5LiveWriter
from poco_core.live.sources import (
    FolderSource,
    H5LiveSource,
    LiveRecording,
    LiveSourceError,
)

N_FRAMES, N_ROIS = 240, 6


def _frames(n: int = N_FRAMES, n_rois: int = N_ROIS, offset: float = 0.0) -> np.ndarray:
    """Frame i holds i * n_rois + column: any loss, duplicate or reordering is visible."""
    return np.arange(n * n_rois, dtype=np.float32).reshape(n, n_rois) + offset


def _template(n_rois: int = N_ROIS) -> Recording:
    return Recording(traces=np.zeros((0, n_rois), np.float32), fs=20.0, roi_ids=[f"r{i}" for i in range(n_rois)])


def write_in_chunks(path: str, restart_at: int, different: bool, reader_has: mp.Value) -> None:
    """Spawned writer: appends 1-4 frames at a time; optionally recreates the file midway, once the
    reader has seen the first file's frames (else it could never tell the files apart)."""
    data = _frames()
    rng = np.random.default_rng(0)
    writer = H5LiveWriter(path, _template())
    i = 0
    while i < N_FRAMES:
        k = int(rng.integers(1, 5))
        writer.append(data[i : i + k])
        i += k
        time.sleep(0.002)
        if restart_at and i >= restart_at:
            while reader_has.value < i:
                time.sleep(0.01)
            writer.close()
            writer = H5LiveWriter(path, _template())
            writer.append(data[:i] + (1000.0 if different else 0.0))
            restart_at = 0
    writer.close()


def _follow(source, n: int, seen=None, timeout: float = 60.0) -> np.ndarray:
    got, deadline = [], time.monotonic() + timeout
    while sum(len(g) for g in got) < n and time.monotonic() < deadline:
        got.append(source.poll())
        if seen is not None:
            seen.value = source.n_frames
        time.sleep(0.002)
    return np.concatenate([g for g in got if g.size]) if any(g.size for g in got) else np.zeros((0, N_ROIS))


def _spawn(path: Path, restart_at: int = 0, different: bool = False):
    ctx = mp.get_context("spawn")
    seen = ctx.Value("i", 0)
    proc = ctx.Process(target=write_in_chunks, args=(str(path), restart_at, different, seen))
    proc.start()
    return proc, seen


@pytest.mark.parametrize("restart_at", [0, N_FRAMES // 2])
def test_h5_frames_from_another_process_arrive_once_in_order(tmp_path, restart_at):
    path = tmp_path / "live.h5"
    proc, seen = _spawn(path, restart_at)
    source = H5LiveSource(path)
    got = _follow(source, N_FRAMES, seen)
    proc.join(30)
    assert proc.exitcode == 0
    np.testing.assert_array_equal(got, _frames())
    assert source.fs == 20.0 and list(source.roi_ids[:2]) == ["r0", "r1"]
    assert source.restarts == (1 if restart_at else 0)
    source.close()


def test_h5_recreated_with_other_data_is_reported(tmp_path):
    path = tmp_path / "live.h5"
    proc, seen = _spawn(path, N_FRAMES // 2, different=True)
    source = H5LiveSource(path)
    with pytest.raises(LiveSourceError, match="recreated with different data"):
        _follow(source, N_FRAMES, seen)
    proc.join(30)


def test_h5_waits_for_a_file_that_does_not_exist_yet(tmp_path):
    source = H5LiveSource(tmp_path / "later.h5")
    assert source.poll().shape[0] == 0 and not source.connected and "waiting" in source.status
    save_recording(Recording(traces=_frames(3), fs=20.0, roi_ids=[f"r{i}" for i in range(N_ROIS)], session="fish07"),
                   tmp_path / "later.h5")
    assert source.session is None
    np.testing.assert_array_equal(source.poll(), _frames(3))
    assert source.session == "fish07"  # the Live panel matches it to the recording open in the viewer
    assert source.poll().shape == (0, N_ROIS)  # a stalled writer: nothing new, no error
    source.close()


def _save_npy(path: Path, block: np.ndarray) -> None:
    np.save(path, block)


def test_folder_chunks_in_natural_name_order(tmp_path):
    data = _frames(30)
    for i, (a, b) in enumerate([(0, 7), (7, 8), (8, 30)]):
        _save_npy(tmp_path / f"chunk_{i * 5}.npy", data[a:b])  # chunk_0, chunk_5, chunk_10
    (tmp_path / ".chunk_99.npy").write_bytes(b"partial")  # hidden: a write-then-rename in progress
    source = FolderSource(tmp_path, fs=5.0)
    np.testing.assert_array_equal(source.poll(), data)
    assert source.n_frames == 30 and source.poll().shape == (0, N_ROIS)


def test_folder_waits_for_a_chunk_being_written_then_reads_it_whole(tmp_path):
    data = _frames(10)
    _save_npy(tmp_path / "c0.npy", data[:4])
    full = tmp_path.parent / f"{tmp_path.name}-full.npy"  # outside the followed folder
    _save_npy(full, data[4:])
    raw = full.read_bytes()
    (tmp_path / "c1.npy").write_bytes(raw[: len(raw) - 20])  # still being written
    source = FolderSource(tmp_path, fs=5.0)
    np.testing.assert_array_equal(source.poll(), data[:4])
    assert source.poll().shape[0] == 0 and "waiting for c1.npy" in source.status
    (tmp_path / "c1.npy").write_bytes(raw)
    np.testing.assert_array_equal(source.poll(), data[4:])


def test_folder_truncated_chunk_that_stays_truncated_is_reported(tmp_path):
    data = _frames(10)
    _save_npy(tmp_path / "c0.npy", data[:4])
    (tmp_path / "c0.npy").write_bytes((tmp_path / "c0.npy").read_bytes()[:-8])
    _save_npy(tmp_path / "c1.npy", data[4:])
    source = FolderSource(tmp_path, fs=5.0, truncated_timeout=0.05)
    assert source.poll().shape[0] == 0  # first sight starts the clock
    time.sleep(0.1)
    with pytest.raises(LiveSourceError, match=r"c0\.npy.*truncated .*header promises"):
        source.poll()


def test_folder_chunk_sorting_before_a_read_one_is_reported(tmp_path):
    _save_npy(tmp_path / "c2.npy", _frames(2))
    source = FolderSource(tmp_path, fs=5.0)
    source.poll()
    _save_npy(tmp_path / "c1.npy", _frames(2))
    with pytest.raises(LiveSourceError, match="reordered"):
        source.poll()


def test_live_recording_appended_from_threads_keeps_order(tmp_path):
    rec = LiveRecording(N_ROIS, fs=5.0)
    data = _frames()

    def acquire() -> None:
        for i in range(0, N_FRAMES, 3):
            rec.append(data[i : i + 3])

    thread = threading.Thread(target=acquire)
    thread.start()
    got = []
    while sum(len(g) for g in got) < N_FRAMES:
        rec.wait(1.0)
        got.append(rec.poll())
    thread.join()
    np.testing.assert_array_equal(np.concatenate(got), data)
    with pytest.raises(Exception, match="ROIs"):
        rec.append(np.zeros(N_ROIS + 1))
