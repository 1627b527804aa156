"""What runs first in a job's child process: its stderr goes to a file the GUI shows if it dies.

Qt-free on purpose: the spawned child imports this module and ``poco_core`` only.
"""
from __future__ import annotations

import os
import sys
from typing import Any

from poco_core.training.jobs import JobSpec, run_job


def run_logged(spec: JobSpec, conn: Any, cancel: Any, log_path: str, events: Any = None) -> None:
    """Send file descriptor 2 (Python's and C libraries' stderr) to ``log_path``, then run the job."""
    sys.stderr.flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    run_job(spec, conn, cancel, events)


def stderr_tail(log_path: str, lines: int = 15) -> str:
    """The last lines a child wrote to its stderr ('' when none)."""
    try:
        with open(log_path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).strip()
    except OSError:
        return ""
