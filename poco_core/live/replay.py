"""Replay a recording into a growing project HDF5 file at its sampling rate, as a microscope
would write it, so live mode can be tried (and tested) without one.
"""
from __future__ import annotations

import os
import time
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Callable

import numpy as np

from poco_core.base.errors import PocoError
from poco_core.base.events import CancelLike, is_cancelled
from poco_core.base.outputs import OutputLock, disk_error, new_temp
from poco_core.data.recording import Recording


class H5LiveWriter:
    """Creates a project HDF5 file (no frames yet) and appends frames in SWMR mode.

    The file is written by ``save_recording`` under a temporary name, opened with
    ``libver='latest'`` and ``swmr_mode`` on, and only then renamed over ``path``: a follower never
    meets it half-made or not yet in SWMR mode, and an existing file is replaced (a new inode), not
    rewritten in place. Every append is flushed, so a reader that calls ``refresh()`` sees it at once.
    The writer holds the output's lock (``.NAME.lock``) until closed: a second writer on the same
    file is refused instead of writing into a file nobody can see any more.
    ``extra`` names per-ROI series stored beside the traces (``extra_traces/<name>``, e.g. "Fneu");
    ``per_frame`` names per-frame columns (``per_frame/<name>``, (T, width), e.g. registration shifts).
    Both grow with every append; readers of the traces ignore them.
    """

    def __init__(self, path: str | Path, template: Recording, extra: tuple[str, ...] = (),
                 per_frame: dict[str, int] | None = None):
        import h5py

        from poco_core.data.io.h5 import save_recording

        self.path = Path(path)
        self._lock = OutputLock(self.path).acquire()
        try:
            tmp = new_temp(self.path)
            empty = np.zeros((0, template.n_rois), np.float32)
            save_recording(dc_replace(template, traces=empty, extra_traces={k: empty for k in extra}), tmp)
            self._file = h5py.File(tmp, "a", libver="latest")
            group = self._file.create_group("per_frame")
            self._columns = {
                name: group.create_dataset(name, shape=(0, width), maxshape=(None, width), dtype=np.float32,
                                           chunks=(1024, width))
                for name, width in (per_frame or {}).items()
            }
            self._file.swmr_mode = True
            os.replace(tmp, self.path)  # readers only ever see the file already in SWMR mode
        except BaseException:
            self._lock.release()
            raise
        self._ds = self._file["traces"]
        self._extra = {k: self._file[f"extra_traces/{k}"] for k in extra}

    @property
    def n_frames(self) -> int:
        return int(self._ds.shape[0])

    def append(self, frames: np.ndarray, extra: dict[str, np.ndarray] | None = None,
               per_frame: dict[str, np.ndarray] | None = None) -> int:
        """Append frames (and the same frames of every extra series and per-frame column); the traces last,
        so a follower never sees traces whose neighbours are missing."""
        block = np.atleast_2d(np.asarray(frames, dtype=np.float32))
        given = {**(extra or {}), **(per_frame or {})}
        if set(given) != set(self._extra) | set(self._columns):
            raise PocoError(f"append needs {sorted(self._extra)} and {sorted(self._columns)}, got {sorted(given)}")
        try:
            for name, ds in [*self._extra.items(), *self._columns.items()]:
                _grow(ds, np.asarray(given[name], dtype=np.float32).reshape(len(block), ds.shape[1]))
            return _grow(self._ds, block)
        except OSError as exc:  # a full disk mid-recording: name the file
            raise disk_error(self.path, exc) from exc

    def close(self) -> None:
        self._file.close()
        self._lock.release()

    def __enter__(self) -> "H5LiveWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _grow(ds, block: np.ndarray) -> int:
    n = ds.shape[0]
    ds.resize(n + len(block), axis=0)
    ds[n:] = block
    ds.flush()
    return n + len(block)


def replay(
    recording: Recording,
    out_h5: str | Path,
    fs: float | None = None,
    chunk: int = 1,
    cancel: CancelLike | None = None,
    on_write: Callable[[int, float], None] | None = None,
) -> int:
    """Write ``recording``'s frames into a growing HDF5 file at ``fs`` (default: its own rate).

    Frames go out ``chunk`` at a time on a fixed schedule (no drift: frame i is due at
    start + i / fs). ``on_write(n_frames, monotonic_time)`` is called after each flushed
    append. Returns the number of frames written (fewer if cancelled).
    """
    fs = float(recording.fs if fs is None else fs)
    if fs <= 0:
        raise PocoError(f"replay rate must be positive, got {fs}")
    with H5LiveWriter(out_h5, dc_replace(recording, fs=fs)) as writer:
        start = time.monotonic()
        for i in range(0, recording.n_frames, chunk):
            due = start + (i + chunk - 1) / fs
            while (wait := due - time.monotonic()) > 0:
                if is_cancelled(cancel):
                    return writer.n_frames
                time.sleep(min(wait, 0.1))
            n = writer.append(recording.traces[i : i + chunk])
            if on_write is not None:
                on_write(n, time.monotonic())
        return writer.n_frames
