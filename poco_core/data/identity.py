"""Which animal a recording is: a fingerprint stored per session in checkpoints.

A session name and an ROI count say little: another animal can share both. The fingerprint
holds the ROI ids, the traces' shape and a SHA-256 of a fixed sample of trace rows, so a
recording matched to a trained session is the one it was trained on (or, for live sources that
grow, at least one with the same ROIs).
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from poco_core.base.errors import PocoError, RecordingError
from poco_core.data.recording import Recording

SAMPLE_ROWS = 32
FINETUNE_HINT = "finetune the model to add this recording (poco finetune)"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ids_hash(roi_ids: Sequence[str]) -> str:
    return _sha("\x00".join(map(str, roi_ids)).encode())


def sample_rows(n_frames: int) -> np.ndarray:
    return np.unique(np.linspace(0, max(n_frames - 1, 0), min(SAMPLE_ROWS, n_frames)).astype(np.int64))


def fingerprint(rec: Recording) -> dict:
    """ROI ids, shape and a hash of sampled trace rows (raw values as read, float32)."""
    rows = sample_rows(rec.n_frames)
    sample = np.ascontiguousarray(np.asarray(rec.traces[rows], dtype=np.float32)) if len(rows) else np.zeros(0, np.float32)
    return {"n_frames": int(rec.n_frames), "n_rois": int(rec.n_rois), "roi_ids": _ids_hash(rec.roi_ids),
            "traces": _sha(sample.tobytes())}


def check_identity(rec: Recording, stored: dict | None, session: str, traces: bool = True,
                   hint: str = FINETUNE_HINT) -> None:
    """Refuse `rec` as session `session` unless it matches the stored fingerprint.

    ``traces=False`` checks only the ROIs (live sources, whose frames are new by nature).
    Checkpoints written before fingerprints carry none: nothing to check.
    """
    if not stored:
        return
    where = rec.source or None
    mine = fingerprint(rec) if traces else {"n_rois": rec.n_rois, "roi_ids": _ids_hash(rec.roi_ids)}
    if mine["n_rois"] != stored.get("n_rois") or mine["roi_ids"] != stored.get("roi_ids"):
        raise RecordingError(where, f"is not the recording session {session!r} was trained on (its ROIs differ); "
                                    f"{hint}")
    if traces and (mine["n_frames"] != stored.get("n_frames") or mine["traces"] != stored.get("traces")):
        raise RecordingError(where, f"is not the recording session {session!r} was trained on (same ROIs, "
                                    f"different traces: another animal or another session?); {hint}")


def refuse_duplicates(recs: Sequence[Recording]) -> None:
    """The same recording twice would train as two sessions; refuse it, naming both inputs."""
    seen: dict[tuple, Recording] = {}
    for rec in recs:
        fp = fingerprint(rec)
        key = (fp["n_frames"], fp["n_rois"], fp["roi_ids"], fp["traces"])
        if key in seen:
            first = seen[key]
            raise PocoError(f"{rec.source or rec.session}: the same recording as {first.source or first.session} "
                            "(identical traces); give each recording once")
        seen[key] = rec
