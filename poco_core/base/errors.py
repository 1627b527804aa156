"""Errors that name the file and the problem, so users never see a deep traceback."""
from __future__ import annotations

from pathlib import Path


class PocoError(Exception):
    """Base class for every error the engine raises on purpose."""


class RecordingError(PocoError):
    """A recording could not be read or is unusable; names the file and the problem."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class FormatNotRecognised(RecordingError):
    """No reader recognises the content at this path."""


class CorruptFile(RecordingError):
    """The file exists but is truncated, corrupt or not what its name says."""


class InvalidTraces(RecordingError):
    """Traces have the wrong shape, NaN/Inf values, or are empty or too short."""


class CheckpointError(PocoError):
    """A checkpoint is missing, corrupt, or from an incompatible format version."""


class Cancelled(PocoError):
    """Raised inside long work when its cancellation token is set."""
