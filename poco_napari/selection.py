"""The shared ROI selection of each recording, and how the napari viewer drives and shows it.

Every view of a recording -- viewer layers, traces dock, preprocessing preview, forecast plot,
UMAP scatter, live panel -- follows ONE :class:`RoiSelection` per Recording::

    from poco_napari.selection import selection_for
    sel = selection_for(rec)          # the same object for the same Recording, made on demand
    sel.indices                       # tuple of ROI indices (rows of rec.traces), in click order
    sel.current                       # the last one selected, or None
    sel.select(i)                     # select only ROI i; sel.select(i, add=True) toggles i
    sel.set([i, j, k]); sel.clear()   # replace / empty the selection
    sel.step(+1)                      # move to the next ROI (the arrow keys)
    sel.changed.connect(fn)           # fn(indices: tuple[int, ...]) after every change

Indices are positions in the recording (``rec.roi_ids[i]``), which are also the rows of the
ROI layers' ``features`` tables. :func:`connect_viewer` makes a viewer part of this: clicking
an ROI selects it (shift-click adds / removes), Up/Down step through ROIs while an ROI layer is
active, and the selected ROIs are ringed and named in the viewer.
"""
from __future__ import annotations

import weakref
from typing import Iterable

import numpy as np
from napari.layers import Labels, Layer, Points
from psygnal import Signal

from poco_core.data.recording import Recording
from poco_napari.colors import roi_labels
from poco_napari.store import RECORDING_KEY, PerObject, recording_of

NEXT_KEY, PREVIOUS_KEY = "Down", "Up"


class RoiSelection:
    """Which ROIs of one recording are selected, in the order they were picked."""

    changed = Signal(tuple)

    def __init__(self, recording: Recording):
        self.recording = recording
        self._indices: tuple[int, ...] = ()

    @property
    def indices(self) -> tuple[int, ...]:
        return self._indices

    @property
    def current(self) -> int | None:
        return self._indices[-1] if self._indices else None

    def set(self, indices: Iterable[int]) -> None:
        """Select exactly these ROIs (duplicates dropped, order kept)."""
        n = self.recording.n_rois
        new = tuple(dict.fromkeys(int(i) for i in indices))
        bad = [i for i in new if not 0 <= i < n]
        if bad:
            raise IndexError(f"ROI indices {bad} out of range for {n} ROIs")
        if new != self._indices:
            self._indices = new
            self.changed.emit(new)

    def select(self, index: int, add: bool = False) -> None:
        """Select one ROI; with ``add`` toggle it in the current selection."""
        index = int(index)
        if not add:
            self.set([index])
        elif index in self._indices:
            self.set(i for i in self._indices if i != index)
        else:
            self.set([*self._indices, index])

    def step(self, delta: int) -> None:
        """Select the ROI ``delta`` places after the current one (clamped to the ends)."""
        start = -1 if self.current is None and delta > 0 else (self.current or 0)
        self.set([int(np.clip(start + delta, 0, self.recording.n_rois - 1))])

    def clear(self) -> None:
        self.set([])


selection_for: PerObject[RoiSelection] = PerObject(RoiSelection)


def roi_at(layer: Layer, event) -> int | None:
    """The ROI index of a Labels/Points ROI layer under a mouse event, or None."""
    value = layer.get_value(event.position, view_direction=event.view_direction,
                            dims_displayed=event.dims_displayed, world=True)
    if isinstance(layer, Labels):
        if value is None or int(value) <= 0:
            return None
        rows = np.flatnonzero(roi_labels(layer) == int(value))
        return int(rows[0]) if len(rows) else None
    if isinstance(layer, Points):
        return None if value is None else int(value)
    return None


class _LayerLink:
    """Keeps one ROI layer's selection rings in step with its recording's selection."""

    def __init__(self, viewer, layer: Layer):
        self._viewer = weakref.ref(viewer)
        self._layer = weakref.ref(layer)
        self._rings: weakref.ref | None = None
        rec = recording_of(layer)
        # a Points layer's points are the ROI positions (centroids, or the grid of a recording without positions)
        self._centroids = np.asarray(layer.data, dtype=float)[:, -2:] if isinstance(layer, Points) else rec.roi_centroids()
        self._size = _ring_size(rec, isinstance(layer, Points))
        for key, delta in ((NEXT_KEY, 1), (PREVIOUS_KEY, -1)):
            layer.bind_key(key, _stepper(delta), overwrite=True)
        selection_for(rec).changed.connect(self.show)
        self.show(selection_for(rec).indices)

    def show(self, indices: tuple[int, ...]) -> None:
        viewer, layer = self._viewer(), self._layer()
        if viewer is None or layer is None or layer not in viewer.layers or self._centroids is None:
            return
        if isinstance(layer, Labels) and indices:
            layer.selected_label = int(roi_labels(layer)[indices[-1]])
        rings = self._rings() if self._rings is not None else None
        if rings is None or rings not in viewer.layers:
            if not indices:
                return
            rings = self._add_rings(viewer, layer)
        idx = list(indices)
        rings.data = self._centroids[idx] if idx else np.empty((0, 2))
        rings.features = {"roi_id": layer.features["roi_id"].to_numpy()[idx]}
        rings.refresh_text()

    def _add_rings(self, viewer, layer: Layer) -> Points:
        active = viewer.layers.selection.active
        rings = viewer.add_points(
            np.empty((0, 2)), name=f"{layer.name} selected", size=self._size, symbol="disc",
            face_color="transparent", border_color="white", border_width=0.12,
            features={"roi_id": np.empty(0, dtype=str)},
            text={"string": "{roi_id}", "color": "white", "size": 10, "anchor": "center",
                  "translation": [-(self._size / 2 + 5), 0]},  # just above the ring
            translate=layer.translate, scale=layer.scale,
            metadata={RECORDING_KEY: recording_of(layer), "poco_role": "selection"},
        )
        for key, delta in ((NEXT_KEY, 1), (PREVIOUS_KEY, -1)):
            rings.bind_key(key, _stepper(delta), overwrite=True)
        self._rings = weakref.ref(rings)
        viewer.layers.selection.active = active
        return rings


def _ring_size(rec: Recording, points: bool) -> float:
    """Ring diameter in pixels: a bit wider than a typical ROI."""
    if points or rec.footprints is None:
        return 16.0
    area = float(np.median(np.diff(rec.footprints.indptr)))
    return 2.0 * np.sqrt(max(area, 1.0) / np.pi) + 6.0


def _stepper(delta: int):
    def step(layer: Layer) -> None:
        selection_for(recording_of(layer)).step(delta)
    step.__doc__ = f"Select the {'next' if delta > 0 else 'previous'} ROI"
    return step


_links: PerObject[list] = PerObject(lambda layer: [])  # layer -> [its _LayerLink]


def _link(viewer, layer: Layer) -> None:
    links = _links(layer)
    if not links and layer.metadata.get("poco_role") == "rois" and recording_of(layer) is not None:
        links.append(_LayerLink(viewer, layer))


def _on_click(viewer, event):
    """Viewer-wide: a click (not a drag) on an ROI of any visible ROI layer selects it."""
    if event.button != 1:
        return
    add = "Shift" in event.modifiers
    hits = [(layer, roi_at(layer, event)) for layer in reversed(viewer.layers)
            if layer.visible and layer.metadata.get("poco_role") == "rois"]
    yield
    if event.type == "mouse_move":
        return
    for layer, index in hits:
        if index is not None:
            selection_for(recording_of(layer)).select(index, add=add)
            return


def connect_viewer(viewer) -> None:
    """Make clicks and keys in this viewer select ROIs, and ring the selected ones (idempotent)."""
    if _on_click in viewer.mouse_drag_callbacks:
        return
    viewer.mouse_drag_callbacks.append(_on_click)
    viewer.layers.events.inserted.connect(lambda event: _link(viewer, event.value))
    for layer in list(viewer.layers):
        _link(viewer, layer)


def link_current_viewer() -> None:
    """Called by the reader and sample data: link the viewer that is opening the file, if any."""
    import napari

    viewer = napari.current_viewer()
    if viewer is not None:
        connect_viewer(viewer)

