"""ROI layers show what preprocessing did: the ROIs it left out (not cells, zero variance, dF/F
baseline <= 0) are greyed through the ``in_model`` features column, for every viewer the reader
opened recordings in."""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from poco_core.data.recording import Recording
from poco_napari.colors import restyle
from poco_napari.store import preprocessed, roi_layers

_connected: weakref.WeakSet = weakref.WeakSet()


def mark_in_model(viewer: Any, rec: Recording, data: Any) -> None:
    """Set ``in_model`` on the recording's ROI layers (True everywhere when ``data`` is None)."""
    keep = None if data is None else np.asarray(data.state.keep)
    for layer in roi_layers(viewer, rec):
        n = len(layer.features)
        layer.features["in_model"] = np.ones(n, dtype=bool) if keep is None else np.isin(np.arange(n), keep)
        restyle(layer)


def connect_viewer(viewer: Any) -> None:
    """Follow ``store.preprocessed`` in this viewer (idempotent; holds the viewer weakly)."""
    real = getattr(viewer, "__wrapped__", viewer)
    if real in _connected:
        return
    _connected.add(real)
    ref = weakref.ref(real)

    def on_change(rec: Recording, data: Any) -> None:
        target = ref()
        if target is None:
            preprocessed.changed.disconnect(on_change)
        else:
            mark_in_model(target, rec, data)

    preprocessed.changed.connect(on_change)
