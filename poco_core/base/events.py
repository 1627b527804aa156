"""Plain-dict progress events and cancellation, shared by training, finetuning and live work.

Events are dicts with a "type" key so the same engine feeds a progress bar, a GUI, a log file
or a notebook. A cancel token is anything with ``is_set()`` (threading.Event,
multiprocessing.Event, or ``CancelToken``).
"""
from __future__ import annotations

import threading
from typing import Any, Protocol

Event = dict[str, Any]


class CancelLike(Protocol):
    def is_set(self) -> bool: ...


class CancelToken:
    """A thread-safe flag; `cancel()` asks long work to stop at its next step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


def is_cancelled(token: CancelLike | None) -> bool:
    return token is not None and token.is_set()
