"""Writing outputs without losing what a user made: atomic replacement, the output policy,
per-output locks and disk errors that name the path.

- ``atomic_path(path)`` yields a temp path in the target's folder; on success the temp file is
  fsynced and ``os.replace``d over the target (a reader sees the old file or the whole new one),
  on failure it is removed. Temp names carry the writer's pid, so ``clean_stale_temps`` removes
  only those whose process is gone.
- ``claim_output(path, kind, inputs, force)`` refuses to write onto an input, refuses an existing
  file of another kind, asks for ``force`` to replace one of the same kind, checks the folder is
  writable, and returns an ``OutputLock`` held while the output is produced.
- ``OutputLock`` is an exclusive ``fcntl.flock`` on ``.NAME.lock`` next to the output; a second
  writer gets an error naming the holder's pid.
"""
from __future__ import annotations

import errno
import os
import re
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from poco_core.base.errors import PocoError

TEMP_SUFFIX = ".poco.tmp"
LOCK_SUFFIX = ".lock"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+" + re.escape(TEMP_SUFFIX) + "$")

# what each output kind is, in words, for the messages
KINDS = {
    "checkpoint": "a POCO checkpoint",
    "recording": "a POCO recording (.h5)",
    "hdf5": "an HDF5 file",
    "npz": "a NumPy .npz archive",
    "text": "a text file",
    "folder": "a folder",
    "other": "a file poco did not write",
}


class OutputError(PocoError):
    """An output cannot be written where asked; names the path and what to do instead."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        super().__init__(f"{path}: {problem}")


def disk_error(path: str | Path, exc: OSError) -> OutputError:
    """A disk-level failure as an error naming the path and, for the common ones, the remedy."""
    hints = {
        errno.ENOSPC: "the disk is full; free space or write elsewhere",
        errno.EDQUOT: "the disk quota is exhausted; free space or write elsewhere",
        errno.EROFS: "the file system is read-only; write elsewhere",
        errno.EACCES: "permission denied; write to a folder you can write to",
        errno.EPERM: "operation not permitted; write to a folder you can write to",
    }
    code = exc.errno
    if code is None:  # h5py: an OSError without errno, the HDF5 message holds "errno = 28"
        m = re.search(r"errno = (\d+)", str(exc))
        code = int(m.group(1)) if m else None
    return OutputError(path, hints.get(code, f"cannot write ({exc.strerror or exc})"))


def _temp_name(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def new_temp(path: str | Path) -> Path:
    """A fresh, empty temp file next to `path`, named so `clean_stale_temps` knows its writer."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=_temp_name(path), suffix=TEMP_SUFFIX, dir=path.parent)
        os.close(fd)
        os.chmod(name, _mode())  # mkstemp makes 0600; outputs get the user's usual permissions
    except OSError as exc:
        raise disk_error(path, exc) from exc
    return Path(name)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path next to `path`; write it inside the block; it replaces `path` on success."""
    path = Path(path)
    tmp = new_temp(path)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise disk_error(path, exc) from exc
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(folder: str | Path) -> list[Path]:
    """Remove this program's temp files in `folder` whose writing process no longer runs."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if m and int(m.group("pid")) != os.getpid() and not _alive(int(m.group("pid"))):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


def check_writable(folder: str | Path, for_path: str | Path | None = None) -> None:
    """Create and remove a probe file in `folder` (catches read-only mounts even for root)."""
    folder = Path(folder)
    target = for_path or folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".poco-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise disk_error(target, exc) from exc


def output_kind(path: str | Path) -> str | None:
    """What is at `path` now (a key of KINDS), or None if nothing is there."""
    path = Path(path)
    if not path.exists():
        return None
    if path.is_dir():
        return "folder"
    if not path.is_file():
        return "other"
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return "other"
    if head == HDF5_SIGNATURE:
        return _hdf5_kind(path)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):
            return "other"
        if any(n.endswith("data.pkl") for n in names):
            return "checkpoint"
        return "npz" if names and all(n.endswith(".npy") for n in names) else "other"
    if path.stat().st_size == 0:
        return "text"
    try:
        with open(path, "rb") as fh:
            fh.read(1 << 16).decode("utf-8")
        return "text"
    except (UnicodeDecodeError, OSError):
        return "other"


def _hdf5_kind(path: Path) -> str:
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return "recording" if f.attrs.get("format") == "poco-recording" else "hdf5"
    except Exception:  # unreadable HDF5: not something poco may replace silently
        return "other"


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when `a` and `b` are the same file (resolved, links followed; hard links by inode)."""
    a, b = Path(a), Path(b)
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def claim_output(path: str | Path, kind: str | Iterable[str], inputs: Iterable[str | Path] = (),
                 force: bool = False, option: str = "--out") -> "OutputLock":
    """Apply the output policy to `path` and return its lock (not yet acquired; use `with`)."""
    path = Path(path)
    kinds = {kind} if isinstance(kind, str) else set(kind)
    for src in inputs:
        if src is not None and Path(src).exists() and same_file(path, src):
            raise OutputError(path, f"is an input of this command ({src}); {option} must name a new file")
    found = output_kind(path)
    want = " or ".join(sorted(KINDS[k] for k in kinds))
    if found is not None and found not in kinds:
        raise OutputError(path, f"already exists and is {KINDS[found]}, not {want}; poco will not replace "
                                f"it -- choose another {option}")
    if found is not None and not force:
        raise OutputError(path, f"already exists ({KINDS[found]}); pass --force to replace it, or choose another {option}")
    check_writable(path.parent, path)
    clean_stale_temps(path.parent)
    return OutputLock(path)


class OutputLock:
    """Exclusive lock on ``.NAME.lock`` next to an output, held for a run's life (re-entrant)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # hidden, so folder readers (which skip dot files) never take it for a recording
        self.lock_path = self.path.with_name(f".{self.path.name}{LOCK_SUFFIX}")
        self._fd: int | None = None
        self._depth = 0

    def acquire(self) -> "OutputLock":
        import fcntl

        if self._fd is not None:
            self._depth += 1
            return self
        while True:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise disk_error(self.path, exc) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_pid(fd)
                os.close(fd)
                who = f" (pid {holder})" if holder else ""
                raise OutputError(self.path, f"another poco process{who} is writing this output; wait for it "
                                             "to finish or choose another output") from None
            try:  # the previous holder may have removed the file between our open and flock
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:  # the holder's pid, for the message a second writer gets (informational: a full disk may refuse it)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        self._fd, self._depth = fd, 1
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        self._depth -= 1
        if self._depth > 0:
            return
        try:
            self.lock_path.unlink(missing_ok=True)  # removed while still held: no one can slip in
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
