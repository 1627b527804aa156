"""Where live frames come from: a growing HDF5 file, a folder of .npy chunks, or Python code.

Every source has the same small interface (:class:`LiveSource`): ``poll()`` returns the frames
that arrived since the previous call, as (k, N) float32, in order, each exactly once; ``fs``,
``roi_ids`` and ``n_frames`` (frames delivered so far) describe the stream. Sources never skip
ahead: a frame that cannot be read yet (a chunk still being written, a file being recreated) is
retried on the next poll, and one that can never be read raises :class:`LiveSourceError`.
"""
from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from poco_core.base.errors import CorruptFile, InvalidTraces, RecordingError

TRACES = "traces"  # dataset name of the project HDF5 format


class LiveSourceError(RecordingError):
    """A live stream cannot continue without losing or reordering frames; says why."""


class LiveSource(Protocol):
    fs: float

    @property
    def roi_ids(self) -> np.ndarray: ...

    @property
    def n_frames(self) -> int: ...

    def poll(self) -> np.ndarray: ...

    def close(self) -> None: ...


def _empty(n: int) -> np.ndarray:
    return np.zeros((0, n), dtype=np.float32)


class LiveRecording:
    """In-process stream: acquisition code calls ``append`` (any thread), a consumer ``poll``s.

    ``wait(timeout)`` blocks until frames are pending, so a consumer thread reacts at once
    instead of polling on a timer.
    """

    def __init__(self, n_rois: int, fs: float, roi_ids: np.ndarray | list[str] | None = None):
        self.fs = float(fs)
        self._roi_ids = np.asarray(roi_ids if roi_ids is not None else np.arange(n_rois)).astype(str)
        if self._roi_ids.shape != (n_rois,):
            raise InvalidTraces(None, f"{len(self._roi_ids)} ROI ids for {n_rois} ROIs")
        self._pending: list[np.ndarray] = []
        self._delivered = 0
        self._cond = threading.Condition()

    @property
    def roi_ids(self) -> np.ndarray:
        return self._roi_ids

    @property
    def n_frames(self) -> int:
        return self._delivered

    def append(self, frames: np.ndarray) -> None:
        """Add one frame (N,) or a block (k, N); copies, so the caller may reuse its buffer."""
        block = np.array(frames, dtype=np.float32, ndmin=2)
        if block.shape[1] != len(self._roi_ids):
            raise InvalidTraces(None, f"appended frames have {block.shape[1]} ROIs, stream has {len(self._roi_ids)}")
        with self._cond:
            self._pending.append(block)
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until frames are pending (True) or ``timeout`` passes (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: bool(self._pending), timeout)

    def poll(self) -> np.ndarray:
        with self._cond:
            blocks, self._pending = self._pending, []
        if not blocks:
            return _empty(len(self._roi_ids))
        out = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        self._delivered += len(out)
        return out

    def close(self) -> None:
        """Nothing to release; present so every source closes the same way."""


class H5LiveSource:
    """Follows the project HDF5 file while another process appends to it (h5py SWMR).

    The writer must open the file with ``libver='latest'`` and switch on ``swmr_mode`` before
    appending to the resizable ``traces`` dataset. A file that does not exist yet, or is not yet
    in SWMR mode, is waited for. If the file is recreated (new inode, or it shrank), the source
    reopens it and continues when the new file starts with the frames already delivered (a
    writer that restarted from the beginning); a different recording raises LiveSourceError.
    """

    def __init__(self, path: str | Path, fs: float | None = None, dataset: str = TRACES):
        self.path = Path(path)
        self.dataset = dataset
        self.status = "waiting for the file"
        self.restarts = 0
        self._fs = fs
        self._file = None
        self._ds = None
        self._ino: tuple[int, int] | None = None
        self._roi_ids: np.ndarray | None = None
        self.session: str | None = None  # the recording's session name, once the file is readable
        self._delivered = 0
        self._last: np.ndarray | None = None  # last delivered frame, to recognise a restarted writer
        self._skip = 0  # frames of a restarted file that repeat frames already delivered
        self._open()

    # -- description ---------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._ds is not None

    @property
    def fs(self) -> float:
        if self._fs is None:
            raise LiveSourceError(self.path, "sampling rate unknown until the file is readable")
        return float(self._fs)

    @property
    def roi_ids(self) -> np.ndarray:
        if self._roi_ids is None:
            raise LiveSourceError(self.path, "ROI ids unknown until the file is readable")
        return self._roi_ids

    @property
    def n_frames(self) -> int:
        return self._delivered

    # -- reading ---------------------------------------------------------------------
    def _open(self) -> bool:
        import h5py

        try:
            st = os.stat(self.path)
            f = h5py.File(self.path, "r", libver="latest", swmr=True, locking=False)  # never block a writer
        except (OSError, FileNotFoundError) as exc:  # absent, or the writer has not started SWMR yet
            self.status = f"waiting for the writer ({type(exc).__name__})"
            return False
        if self.dataset not in f:
            f.close()
            self.status = f"waiting for dataset {self.dataset!r}"
            return False
        ds = f[self.dataset]
        if ds.ndim != 2:
            f.close()
            raise LiveSourceError(self.path, f"dataset {self.dataset!r} has shape {ds.shape}, expected (frames, ROIs)")
        self._file, self._ds, self._ino = f, ds, (st.st_dev, st.st_ino)
        self._read_meta(f, ds)
        self.status = "following"
        return True

    def _read_meta(self, f, ds) -> None:
        n = ds.shape[1]
        ids = np.asarray(f["roi_ids"][()]).astype(str) if "roi_ids" in f else np.arange(n).astype(str)
        if self._roi_ids is not None and not np.array_equal(ids, self._roi_ids):
            self.close()
            raise LiveSourceError(self.path, "file was recreated with different ROIs; reconnect to follow it")
        self._roi_ids = ids
        session = f.attrs.get("session")
        if isinstance(session, bytes):
            session = session.decode()
        self.session = str(session) if session else None
        if self._fs is None:
            for holder in (ds, f):
                if "fs" in holder.attrs:
                    self._fs = float(holder.attrs["fs"])
                    break

    def _recreated(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (st.st_dev, st.st_ino) != self._ino

    def _reopen(self) -> None:
        self.close()
        self.restarts += 1
        self._skip = self._delivered  # the new file must first repeat what we already have
        self._open()

    def poll(self) -> np.ndarray:
        if self._ds is None and not self._open():
            return _empty(0 if self._roi_ids is None else len(self._roi_ids))
        if self._recreated():
            self._reopen()
            return self.poll() if self._ds is not None else _empty(len(self.roi_ids))
        try:
            self._ds.refresh()
            n = self._ds.shape[0]
            if self._skip and not self._resumed(n):
                return _empty(len(self.roi_ids))
            if n < self._delivered:  # shrank in place: truncated and rewritten
                self._reopen()
                return _empty(len(self.roi_ids))
            block = np.asarray(self._ds[self._delivered : n], dtype=np.float32)
        except (OSError, RuntimeError, KeyError) as exc:  # the file went away under us
            self.status = f"reopening after {type(exc).__name__}: {exc}"
            self._reopen()
            return _empty(len(self.roi_ids))
        self._delivered += len(block)
        if len(block):
            self._last = block[-1].copy()
        return block

    def _resumed(self, n: int) -> bool:
        """After a restart: True once the new file holds the delivered frames again and they match."""
        if n < self._skip:
            self.status = f"writer restarted: {n} of {self._skip} frames rewritten so far"
            return False
        if self._last is not None and not np.array_equal(np.asarray(self._ds[self._skip - 1], np.float32), self._last):
            self.close()
            raise LiveSourceError(
                self.path,
                f"file was recreated with different data (frame {self._skip - 1} differs); reconnect to follow it",
            )
        self._skip = 0
        self.status = f"following (writer restarted {self.restarts}x, continued)"
        return True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = self._ds = None


_NUMBER = re.compile(r"(\d+)")


def _natural_key(name: str) -> list:
    """chunk_2 before chunk_10, whatever the zero padding."""
    return [int(p) if p.isdigit() else p for p in _NUMBER.split(name)]


def npy_expected_size(path: Path) -> int | None:
    """Bytes a complete .npy at ``path`` must have according to its header; None if the header is incomplete."""
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(fh)
        except (ValueError, EOFError, SyntaxError):
            return None
        return fh.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


class FolderSource:
    """Follows a folder where a pipeline drops ``.npy`` chunks (frames x ROIs, in name order).

    A chunk whose size is short of what its header promises is still being written: it is
    retried on later polls, and nothing after it is read. If it is still short after
    ``truncated_timeout`` seconds and a later chunk exists (the writer moved on), the source
    raises LiveSourceError naming the chunk and its size. Hidden files and ``*.tmp`` are
    ignored, so writers that write-then-rename work too.
    """

    def __init__(
        self,
        folder: str | Path,
        fs: float,
        roi_ids: np.ndarray | list[str] | None = None,
        pattern: str = "*.npy",
        truncated_timeout: float = 10.0,
    ):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise LiveSourceError(self.folder, "not a folder")
        self.fs = float(fs)
        self.pattern = pattern
        self.truncated_timeout = truncated_timeout
        self.status = "waiting for the first chunk"
        self._roi_ids = None if roi_ids is None else np.asarray(roi_ids).astype(str)
        self._done: list[str] = []
        self._short_since: dict[str, float] = {}
        self._delivered = 0

    @property
    def roi_ids(self) -> np.ndarray:
        if self._roi_ids is None:
            raise LiveSourceError(self.folder, "ROI ids unknown until the first chunk arrives")
        return self._roi_ids

    @property
    def n_frames(self) -> int:
        return self._delivered

    def _pending(self) -> list[Path]:
        names = sorted((p.name for p in self.folder.glob(self.pattern) if not p.name.startswith(".")), key=_natural_key)
        last = _natural_key(self._done[-1]) if self._done else None
        done = set(self._done)
        late = [n for n in names if n not in done and last is not None and _natural_key(n) < last]
        if late:
            raise LiveSourceError(
                self.folder / late[0], f"chunk arrived after {self._done[-1]} but sorts before it; frames would be reordered"
            )
        return [self.folder / n for n in names if n not in done]

    def _load(self, path: Path, has_next: bool) -> np.ndarray | None:
        """The chunk as (k, N) float32, or None while it is still being written."""
        expected = npy_expected_size(path)
        size = path.stat().st_size
        if expected is None or size < expected:
            first = self._short_since.setdefault(path.name, time.monotonic())
            waited = time.monotonic() - first
            if has_next and waited > self.truncated_timeout:
                raise LiveSourceError(
                    path,
                    f"chunk is truncated ({size} bytes, header promises {expected or 'a longer header'}) "
                    f"and stayed so for {waited:.0f} s while later chunks arrived; the writer probably "
                    "crashed while writing it. Re-write it or remove it to go on.",
                )
            self.status = f"waiting for {path.name} to be complete ({size} bytes so far)"
            return None
        try:
            block = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise CorruptFile(path, f"not a readable .npy chunk: {exc}") from exc
        self._short_since.pop(path.name, None)
        block = np.atleast_2d(np.asarray(block, dtype=np.float32))  # a single frame (N,) is one row
        if block.ndim != 2:
            raise InvalidTraces(path, f"chunk has shape {block.shape}, expected (frames, ROIs)")
        if self._roi_ids is None:
            self._roi_ids = np.arange(block.shape[1]).astype(str)
        if block.shape[1] != len(self._roi_ids):
            raise InvalidTraces(path, f"chunk has {block.shape[1]} ROIs, the stream has {len(self._roi_ids)}")
        return block

    def poll(self) -> np.ndarray:
        pending = self._pending()
        blocks = []
        for i, path in enumerate(pending):
            block = self._load(path, has_next=i + 1 < len(pending))
            if block is None:
                break
            blocks.append(block)
            self._done.append(path.name)
        if not blocks:
            return _empty(0 if self._roi_ids is None else len(self._roi_ids))
        self.status = f"following ({len(self._done)} chunks)"
        out = np.concatenate(blocks)
        self._delivered += len(out)
        return out

    def close(self) -> None:
        """Nothing held open between polls."""


def open_source(path: str | Path, fs: float | None = None) -> H5LiveSource | FolderSource:
    """A folder gives a FolderSource (needs ``fs``), anything else the SWMR HDF5 follower."""
    if fs is not None and not fs > 0:
        raise LiveSourceError(path, f"the sampling rate must be a positive number of Hz, got {fs}")
    path = Path(path)
    if path.is_dir():
        if fs is None:
            raise LiveSourceError(path, "a chunk folder needs the sampling rate (fs)")
        return FolderSource(path, fs)
    return H5LiveSource(path, fs=fs)
