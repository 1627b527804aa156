"""Where the widgets find the open recordings and what was computed from them.

The viewer's layers are the registry: a layer made by the reader carries
``layer.metadata["poco_recording"]`` (the Recording itself, shared by its anatomy and ROI
layers). State that belongs to one recording -- its ROI selection (``selection.selection_for``)
and its preprocessed data (``preprocessed``) -- is kept per Recording object and lives exactly
as long as that object does.

Preprocessed data, for the training widget and anyone else::

    from poco_napari.store import preprocessed
    data = preprocessed.get(rec)         # poco_core.data.preprocess.SessionData or None
    data.values, data.ranges, data.state  # (T, N') model inputs, split ranges, fitted state
    data.state.config                     # the PreprocessConfig that produced it
    preprocessed.changed.connect(lambda rec, data: ...)  # data is None when cleared
"""
from __future__ import annotations

import weakref
from typing import Any, Callable, Generic, TypeVar

from napari.layers import Layer
from psygnal import Signal

from poco_core.data.preprocess import SessionData
from poco_core.data.recording import Recording

T = TypeVar("T")
RECORDING_KEY = "poco_recording"


class PerObject(Generic[T]):
    """One value per live object (a Recording, a layer). Recording is an unhashable dataclass,
    so objects are keyed by identity and the entry is dropped when the object is collected."""

    def __init__(self, factory: Callable[[Any], T]):
        self._factory = factory
        self._values: dict[int, T] = {}

    def __call__(self, rec: Any) -> T:
        key = id(rec)
        if key not in self._values:
            self._values[key] = self._factory(rec)
            weakref.finalize(rec, self._values.pop, key, None)
        return self._values[key]

    def peek(self, rec: Any) -> T | None:
        """The value if one was made, without making it."""
        return self._values.get(id(rec))


class PreprocessedStore:
    """The preprocessed SessionData of each recording (set by the Preprocessing widget's Apply)."""

    changed = Signal(object, object)  # (Recording, SessionData | None)

    def __init__(self) -> None:
        self._slots: PerObject[list] = PerObject(lambda rec: [None])

    def get(self, rec: Recording) -> SessionData | None:
        slot = self._slots.peek(rec)
        return None if slot is None else slot[0]

    def set(self, rec: Recording, data: SessionData | None) -> None:
        self._slots(rec)[0] = data
        self.changed.emit(rec, data)


preprocessed = PreprocessedStore()


def follow_while_alive(signal: Any, slot: Callable, widget: Any) -> None:
    """Connect a widget's slot to an application-wide signal until the widget's Qt object is
    deleted (a closed dock's Python wrapper can outlive it; a call then would raise)."""
    signal.connect(slot)
    widget.destroyed.connect(lambda *_: signal.disconnect(slot))


def recording_of(layer: Layer | None) -> Recording | None:
    """The Recording a POCO layer shows, or None for any other layer."""
    rec = None if layer is None else layer.metadata.get(RECORDING_KEY)
    return rec if isinstance(rec, Recording) else None


def recordings_in(viewer) -> list[Recording]:
    """The distinct recordings shown in a viewer, in layer order."""
    seen: dict[int, Recording] = {}
    for layer in viewer.layers:
        rec = recording_of(layer)
        if rec is not None:
            seen.setdefault(id(rec), rec)
    return list(seen.values())


def roi_layers(viewer, rec: Recording) -> list[Layer]:
    """The Labels/Points layers that draw this recording's ROIs."""
    return [layer for layer in viewer.layers
            if recording_of(layer) is rec and layer.metadata.get("poco_role") == "rois"]


def active_recording(viewer) -> Recording | None:
    """The recording of the active layer, else the first one open."""
    rec = recording_of(viewer.layers.selection.active)
    if rec is not None:
        return rec
    recs = recordings_in(viewer)
    return recs[0] if recs else None
