"""Shared by the extraction tests: read an ExtractionSource to its end."""
from __future__ import annotations

import numpy as np

from poco_core.live.extract import ExtractionSource


def drain(src: ExtractionSource) -> np.ndarray:
    """Every frame's raw F, polling until the frames are finished and nothing more comes; closes ``src``."""
    parts = []
    while True:
        parts.append(src.poll())
        if src.frames.finished and not len(parts[-1]):
            break
    src.close()
    return np.concatenate(parts)
