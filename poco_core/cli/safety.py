"""Argument checks and output claims every `poco` command shares, run before any data is loaded.

- argparse types for counts and rates that must be positive (``--batch-size 0`` is exit 2 with
  the option named, not a traceback after loading);
- ``--force`` and ``claim(...)``: the output policy of ``poco_core.base.outputs`` for one option;
- ``check_inputs``: inputs that exist, are files or folders (never a FIFO or a device, which
  would block), given once;
- ``warn_unused``: options that have no effect on some recording say so.
"""
from __future__ import annotations

import argparse
import stat
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from poco_core.base.errors import PocoError, RecordingError
from poco_core.base.outputs import OutputLock, claim_output


def _number(kind: type, minimum: float, strict: bool):
    word = "a positive" if strict else "a non-negative"
    noun = "whole number" if kind is int else "number"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {word} {noun}, got {text!r}") from None
        if value != value or (value <= minimum if strict else value < minimum) or value in (float("inf"),):
            raise argparse.ArgumentTypeError(f"must be {word} {noun}, got {text!r}")
        return value

    parse.__name__ = f"{'positive' if strict else 'non_negative'}_{kind.__name__}"
    return parse


positive_int = _number(int, 0, True)
positive_float = _number(float, 0.0, True)
non_negative_int = _number(int, 0, False)
non_negative_float = _number(float, 0.0, False)


def add_force_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true",
                   help="replace an existing output of the same kind (never an input, never another kind of file)")


def claim(path: Path | str | None, kind: str | Iterable[str], inputs: Sequence[Path | str | None], force: bool,
          option: str = "--out", hold: bool = True) -> OutputLock | None:
    """The lock on `path` after the output policy allowed it (None when no output was asked for);
    ``hold=False`` only applies the policy (for writers that lock the file themselves)."""
    if path is None:
        return None
    lock = claim_output(Path(path), kind, [i for i in inputs if i is not None], force, option)
    return lock.acquire() if hold else None


def release(*locks: OutputLock | None) -> None:
    for lock in locks:
        if lock is not None:
            lock.release()


def check_inputs(paths: Iterable[Path | str]) -> None:
    """Each input exists, is a regular file or a folder, and is given once."""
    seen: dict[Path, Path] = {}
    for path in map(Path, paths):
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise RecordingError(path, "does not exist") from None
        except OSError as exc:
            raise RecordingError(path, f"cannot be read ({exc.strerror})") from None
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise RecordingError(path, "is not a regular file or folder (a pipe, socket or device); "
                                       "poco reads recordings from files")
        key = path.resolve()
        if key in seen:
            raise PocoError(f"{path}: given twice (also as {seen[key]}); give each recording once")
        seen[key] = path


def warn_unused(recs: Sequence, neuropil_coef: float | None = None, iscell_only: bool = False) -> None:
    """A warning line per recording an option cannot apply to (instead of doing nothing silently)."""
    for rec in recs:
        name = rec.source or rec.session
        if neuropil_coef is not None and "Fneu" not in rec.extra_traces:
            print(f"warning: {name}: --neuropil-coef has no effect (the recording has no Fneu traces)",
                  file=sys.stderr)
        if iscell_only and "iscell" not in rec.roi_info:
            print(f"warning: {name}: --iscell-only has no effect (the recording has no iscell classification)",
                  file=sys.stderr)
