"""A combo box of the recordings open in a viewer that follows the active layer.

Every POCO dock shows one recording at a time; this keeps them all choosing it the same way.
"""
from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox

from poco_core.data.recording import Recording
from poco_napari.store import active_recording, recordings_in


class RecordingBox(QComboBox):
    """``recording`` is the chosen one (or None); ``recording_changed(rec)`` fires on change."""

    recording_changed = Signal(object)

    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.recording: Recording | None = None
        self.setToolTip("Recording shown here; follows the layer selected in the layer list")
        self.currentIndexChanged.connect(self._on_index)
        viewer.layers.events.inserted.connect(self.refresh)
        viewer.layers.events.removed.connect(self.refresh)
        viewer.layers.selection.events.active.connect(self._follow_active)
        self.refresh()

    def set_recording(self, rec: Recording | None) -> None:
        recs = recordings_in(self.viewer)
        index = next((i for i, r in enumerate(recs) if r is rec), -1)
        if index >= 0:
            self.blockSignals(True)
            self.setCurrentIndex(index)
            self.blockSignals(False)
        if rec is not self.recording:
            self.recording = rec
            self.recording_changed.emit(rec)

    def refresh(self, event=None) -> None:
        recs = recordings_in(self.viewer)
        self.blockSignals(True)
        self.clear()
        self.addItems([f"{r.dataset}/{r.session}" for r in recs])
        self.blockSignals(False)
        keep = any(r is self.recording for r in recs)
        self.set_recording(self.recording if keep else active_recording(self.viewer))

    def _on_index(self, i: int) -> None:
        recs = recordings_in(self.viewer)
        if 0 <= i < len(recs):
            self.set_recording(recs[i])

    def _follow_active(self, event=None) -> None:
        rec = active_recording(self.viewer)
        if rec is not None:
            self.set_recording(rec)
