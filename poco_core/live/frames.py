"""Frames from the microscope: one multi-page TIFF or a folder of TIFF files, followed while written.

``TiffFrames.poll()`` returns the frames that became complete since the previous call, as
(k, Ly, Lx) float32, in order, each once. A page is only read when its whole image data lies
inside the file (the writer may be half way through it): while following, an incomplete or
undecodable page is retried on later polls (and raises ``LiveSourceError`` only if it stays so
for ``stall_timeout`` s while a later file exists); without following, it is a ``CorruptFile``
naming the file and the page. Files in a folder are read in natural name order; a file that is
not a TIFF is ignored and noted once (``notes``); hidden and ``*.tmp`` files are ignored.

Pages interleave channels fastest, then planes (ScanImage's order); ScanImage metadata in the
first file gives the number of channels and planes and the frame rate when present, the
options otherwise. One channel is kept, and one plane, or (``plane=None``) every plane: ``poll``
then returns whole volumes, (k, planes, Ly, Lx), a volume only once its last plane has arrived.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poco_core.base.errors import CorruptFile, RecordingError
from poco_core.live.sources import LiveSourceError, _natural_key

TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass
class StackLayout:
    """How pages interleave: ``n_channels`` fastest, then ``n_planes``; which channel to keep, and
    which plane (None: all of them)."""

    n_channels: int = 1
    n_planes: int = 1
    channel: int = 0
    plane: int | None = 0

    def __post_init__(self) -> None:
        if not 0 <= self.channel < self.n_channels:
            raise RecordingError(None, f"channel {self.channel} does not exist: the stack has {self.n_channels} channel(s)")
        if self.plane is not None and not 0 <= self.plane < self.n_planes:
            raise RecordingError(None, f"plane {self.plane} does not exist: the stack has {self.n_planes} plane(s)")

    def keeps(self, page: int) -> bool:
        return page % self.n_channels == self.channel and (
            self.plane is None or (page // self.n_channels) % self.n_planes == self.plane)

    @property
    def per_frame(self) -> int:
        """Kept pages that make one frame: every plane of a volume, or the one plane."""
        return self.n_planes if self.plane is None else 1


def parse_plane(text: str | int | None) -> int | None:
    """A plane index from user input, or None for 'all' (every plane, one recording)."""
    if text is None or (isinstance(text, str) and text.strip().lower() == "all"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise RecordingError(None, f"a plane is a number (0-based) or 'all', got {text!r}") from None
    if value < 0:
        raise RecordingError(None, f"plane numbers start at 0, got {value}")
    return value


def scanimage_layout(frame_data: dict) -> dict:
    """Channels, planes and frame (volume) rate from ScanImage's ``FrameData`` metadata; only what it states."""
    out: dict = {}
    saved = frame_data.get("SI.hChannels.channelSave")
    if saved is not None:
        out["n_channels"] = len(saved) if isinstance(saved, (list, tuple)) else 1
    slices = frame_data.get("SI.hStackManager.actualNumSlices", frame_data.get("SI.hStackManager.numSlices"))
    fast_z = frame_data.get("SI.hFastZ.enable", frame_data.get("SI.hStackManager.enable", True))
    if slices is not None and fast_z:
        out["n_planes"] = max(int(slices), 1)
    rate_key = "SI.hRoiManager.scanVolumeRate" if out.get("n_planes", 1) > 1 else "SI.hRoiManager.scanFrameRate"
    rate = frame_data.get(rate_key, frame_data.get("SI.hRoiManager.scanFrameRate"))
    if rate is not None and float(rate) > 0:
        out["fs"] = float(rate)
    return out


class _TiffLog(logging.Handler):
    """Collects what tifffile logs while a file is opened (its warnings about a cut page chain)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _read_pages(path: Path, start: int, keep, limit: int | None = None) -> tuple[list[np.ndarray], int, str | None, dict | None]:
    """(images of kept pages (at most ``limit``), pages read, the problem that stopped reading or None, ScanImage FrameData)."""
    import tifffile

    log = logging.getLogger("tifffile")
    handler = _TiffLog()
    log.addHandler(handler)
    propagate, log.propagate = log.propagate, False
    images: list[np.ndarray] = []
    done = start
    meta = None
    try:
        with tifffile.TiffFile(path) as tif:
            size = tif.filehandle.size
            if start == 0 and tif.is_scanimage:
                meta = (tif.scanimage_metadata or {}).get("FrameData")
            n = len(tif.pages)
            for i in range(start, n):
                page = tif.pages[i]
                end = max((o + c for o, c in zip(page.dataoffsets, page.databytecounts)), default=0)
                if end > size or not page.databytecounts or 0 in page.databytecounts or 0 in page.shape:
                    return images, done, f"page {i} is incomplete (its data ends at byte {end}, the file has {size})", meta
                if keep(i):
                    images.append(np.asarray(page.asarray(), dtype=np.float32))
                done = i + 1
                if limit is not None and len(images) >= limit:
                    return images, done, None, meta
    except Exception as exc:  # tifffile raises many types on a half-written or damaged file
        return images, done, f"page {done} cannot be read: {exc}", meta
    finally:
        log.removeHandler(handler)
        log.propagate = propagate
    problem = f"page {done} is cut off or damaged (tifffile: {handler.messages[0]})" if handler.messages else None
    return images, done, problem, meta


class TiffFrames:
    """Follows a multi-page TIFF or a folder of TIFFs (see the module docstring)."""

    def __init__(self, path: str | Path, follow: bool = False, channel: int = 0, plane: int | None = 0,
                 n_channels: int | None = None, n_planes: int | None = None, fs: float | None = None,
                 stall_timeout: float = 10.0):
        self.path = Path(path)
        if not self.path.exists():
            raise RecordingError(self.path, "no such file or folder")
        if self.path.is_file() and self.path.suffix.lower() not in TIFF_SUFFIXES:
            raise RecordingError(self.path, "not a TIFF file (.tif/.tiff)")
        self.follow = follow
        self.stall_timeout = stall_timeout
        self._options = {"n_channels": n_channels, "n_planes": n_planes, "channel": channel, "plane": plane}
        self.fs = fs
        self.all_planes = plane is None
        self._partial: list[np.ndarray] = []  # planes of a volume not yet complete
        self.layout: StackLayout | None = None
        self.notes: list[str] = []
        self.status = "waiting for the first frame"
        self.shape: tuple[int, int] | None = None
        self.n_frames = 0
        self._pages_before = 0  # pages in files already finished
        self._done_files: list[str] = []
        self._pages_in_current = 0
        self._stuck_since: float | None = None
        self._noted: set[str] = set()
        self._sizes: dict[str, int] = {}

    def _files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        found = []
        for p in sorted(self.path.iterdir(), key=lambda p: _natural_key(p.name)):
            if p.name.startswith(".") or p.suffix == ".tmp" or not p.is_file():
                continue
            if p.suffix.lower() not in TIFF_SUFFIXES:
                if p.name not in self._noted:
                    self._noted.add(p.name)
                    self.notes.append(f"ignored {p.name}: not a TIFF file")
                continue
            found.append(p)
        return found

    def _set_layout(self, meta: dict | None) -> None:
        stated = scanimage_layout(meta) if meta else {}
        opts = self._options
        self.layout = StackLayout(
            n_channels=opts["n_channels"] or stated.get("n_channels", 1), n_planes=opts["n_planes"] or stated.get("n_planes", 1),
            channel=opts["channel"], plane=opts["plane"])
        if self.fs is None and "fs" in stated:
            self.fs = stated["fs"]
        if stated:
            self.notes.append("ScanImage metadata: " + ", ".join(f"{k} {v}" for k, v in stated.items()))

    def _check_shape(self, path: Path, images: list[np.ndarray]) -> None:
        for img in images:
            if img.ndim != 2:
                raise CorruptFile(path, f"pages have shape {img.shape}; expected one 2-D image per page")
            if self.shape is None:
                self.shape = img.shape
            elif img.shape != self.shape:
                raise CorruptFile(path, f"a page of {img.shape[0]} x {img.shape[1]} px among frames of "
                                        f"{self.shape[0]} x {self.shape[1]} px")

    def _frames(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Kept pages -> frames: as they are, or grouped into whole volumes (the rest waits)."""
        if not self.all_planes:
            return images
        pages = self._partial + images
        n = self.layout.per_frame
        whole = len(pages) // n * n
        self._partial = pages[whole:]
        return [np.stack(pages[i:i + n]) for i in range(0, whole, n)]

    def poll(self, max_frames: int = 256) -> np.ndarray:
        """The frames completed since the last call, (k, Ly, Lx) float32 (all planes: (k, planes, Ly, Lx)),
        at most ``max_frames`` (k may be 0)."""
        files = [p for p in self._files() if p.name not in self._done_files]
        out: list[np.ndarray] = []
        stalled = False
        for i, path in enumerate(files):
            if len(out) >= max_frames:
                break
            has_next = i + 1 < len(files)
            size = path.stat().st_size
            if size == self._sizes.get(path.name) and not has_next:
                break  # the file has not grown since we last read it
            self._sizes[path.name] = size
            base = self._pages_before
            keep = (lambda k: self.layout.keeps(base + k)) if self.layout else None
            if keep is None:
                # the layout comes from the first file's metadata: read it once first
                _, done, problem, meta = _read_pages(path, 0, lambda k: False)
                if problem is not None and done == 0:  # not even the first page yet: its metadata may be missing
                    self._stalled(path, problem, has_next)
                    stalled = True
                    break
                self._set_layout(meta)
                keep = lambda k: self.layout.keeps(base + k)  # noqa: E731
            limit = (max_frames - len(out)) * self.layout.per_frame - len(self._partial)
            images, done, problem, _ = _read_pages(path, self._pages_in_current, keep, limit)
            self._check_shape(path, images)
            out.extend(self._frames(images))
            self._pages_in_current = done
            if len(out) >= max_frames and problem is None:
                self._sizes.pop(path.name, None)  # more may follow in this file: read on at the next poll
                break
            if problem is not None:
                self._stalled(path, problem, has_next, give_up=not out)  # frames read before it go out first
                stalled = True
                break
            self._stuck_since = None
            if has_next or not self.follow:
                self._done_files.append(path.name)
                self._pages_before += done
                self._pages_in_current = 0
        self.n_frames += len(out)
        if self._partial and self.finished and not any("incomplete volume" in n for n in self.notes):
            self.notes.append(f"the last volume is an incomplete volume ({len(self._partial)} of "
                              f"{self.layout.n_planes} planes): left out")
        if out and not stalled:
            self.status = f"{self.n_frames} frames read"
        if not out:
            planes = (self.layout.n_planes,) if self.all_planes and self.layout else ()
            return np.zeros((0, *planes, *(self.shape or (0, 0))), np.float32)
        return np.stack(out)

    def _stalled(self, path: Path, problem: str, has_next: bool, give_up: bool = True) -> None:
        if not self.follow:
            raise CorruptFile(path, problem)
        self._sizes.pop(path.name, None)  # read again next time even if the size did not change
        first = self._stuck_since = self._stuck_since or time.monotonic()
        waited = time.monotonic() - first
        if give_up and has_next and waited > self.stall_timeout:
            raise LiveSourceError(path, f"{problem}, and it stayed so for {waited:.0f} s while later files arrived; "
                                        "the writer probably stopped while writing it")
        self.status = f"waiting for {path.name}: {problem}"

    @property
    def finished(self) -> bool:
        """Without following: every file has been read."""
        return not self.follow and len(self._done_files) == len(self._files())

    def close(self) -> None:
        """Nothing held open between polls."""
