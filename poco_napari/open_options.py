"""How a recording was read, and reading it again another way: which NWB or CaImAn series, the
sampling rate of a plain array (which states none), the suite2p plane, cells only.

napari's File > Open takes no options, so a file opens with the reader's defaults (a notification
says when a rate was guessed) and this group reopens it with the choices, in the same place.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLabel, QPushButton

from poco_core.base.errors import PocoError
from poco_core.data.io import load_recording
from poco_core.data.recording import Recording
from poco_napari.forms import collapsible
from poco_napari.layers import recording_layers
from poco_napari.store import recording_of

CAIMAN_SERIES = ("C", "F_dff", "S", "YrA")  # poco_core.data.io.caiman.TRACE_CHOICES
CELLS_FORMATS = ("suite2p", "caiman")  # readers with an iscell_only option


def open_options(rec: Recording) -> dict[str, Any]:
    """The choices a recording's format offers: {"series": [...], "plane": [...], "cells": bool, "fs": bool}."""
    prov = rec.provenance
    fmt = prov.get("format")
    series = list(prov.get("series_choices") or (CAIMAN_SERIES if fmt == "caiman" else []))
    planes = [f"plane{i}" for i in range(int(prov.get("n_planes") or 0))] if fmt == "suite2p" else []
    return {"series": series, "plane": planes if len(planes) > 1 else [], "cells": fmt in CELLS_FORMATS}


def reopen(viewer: Any, rec: Recording, **options: Any) -> Recording:
    """Read ``rec``'s file again with ``options`` and put its new layers where the old ones were."""
    source = Path(rec.source)
    if rec.provenance.get("format") == "suite2p" and source.name.startswith("plane"):
        source = source.parent  # the plane folder: read the suite2p folder, choosing the plane
    new = load_recording(source, **{**rec.provenance.get("options", {}), **options})
    old = [layer for layer in viewer.layers if recording_of(layer) is rec]
    translate = tuple(old[0].translate[-2:]) if old else (0.0, 0.0)
    for layer in old:
        viewer.layers.remove(layer)
    for data, kwargs, kind in recording_layers(new, translate=translate):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    return new


class SourceGroup:
    """The "Source" settings group of the Preprocessing dock (built by :meth:`group`)."""

    def __init__(self, viewer: Any, reopened: Callable[[Recording], None] | None = None):
        self.viewer = viewer
        self.reopened = reopened
        self.recording: Recording | None = None
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.series = QComboBox()
        self.series.setToolTip("Which trace series of the file to model (NWB: RoiResponseSeries; CaImAn: C, F_dff, S, YrA)")
        self.plane = QComboBox()
        self.plane.setToolTip("Which suite2p plane to read")
        self.fs = QDoubleSpinBox(minimum=0.001, maximum=100_000.0, decimals=3, suffix=" Hz")
        self.fs.setToolTip("Sampling rate (frames per second); plain arrays state none, so set it here")
        self.cells = QCheckBox("read cells only (suite2p iscell, CaImAn accepted)")
        self.cells.setToolTip("Read only the ROIs the pipeline classified as cells; the others are not opened at all")
        self.button = QPushButton("Reopen with these choices")
        self.button.setToolTip("Read the file again with the choices above; its layers are replaced in place")
        self.button.clicked.connect(self.apply)
        self.status = QLabel()
        self.status.setWordWrap(True)

    def group(self):
        return collapsible("Source (how the file was read)", [
            ("", self.info), ("series", self.series), ("plane", self.plane), ("sampling rate", self.fs),
            ("", self.cells), ("", self.button), ("", self.status)], expanded=False)

    def show(self, rec: Recording | None) -> None:
        self.recording = rec
        enabled = rec is not None and bool(rec.source) and Path(rec.source).exists()
        for widget in (self.series, self.plane, self.fs, self.cells, self.button):
            widget.setEnabled(enabled)
        if rec is None:
            self.info.setText("")
            return
        choices = open_options(rec)
        prov = rec.provenance
        guessed = " (a placeholder: the file states no rate)" if prov.get("fs_placeholder") else ""
        self.info.setText(f"{prov.get('format', '?')}: {rec.source or 'in memory'}; {rec.n_rois} ROIs, "
                          f"{rec.fs:g} Hz{guessed}")
        for box, items, current in ((self.series, choices["series"], prov.get("series")),
                                    (self.plane, choices["plane"], prov.get("plane"))):
            box.clear()
            box.addItems(items)
            box.setEnabled(enabled and len(items) > 1)
            if current in items:
                box.setCurrentText(current)
        self.fs.setValue(float(rec.fs))
        self.cells.setEnabled(enabled and choices["cells"])
        self.cells.setChecked(bool(prov.get("options", {}).get("iscell_only")))

    def choices(self) -> dict[str, Any]:
        rec = self.recording
        options: dict[str, Any] = {}
        if self.series.isEnabled():
            options["series"] = self.series.currentText()
        if self.plane.isEnabled():
            options["plane"] = self.plane.currentText()
        prov = rec.provenance
        if abs(self.fs.value() - rec.fs) > 1e-9 or prov.get("fs_placeholder") or prov.get("fs_given"):
            options["fs"] = self.fs.value()
        if self.cells.isEnabled():
            options["iscell_only"] = self.cells.isChecked()
        return options

    def apply(self) -> Recording | None:
        if self.recording is None:
            return None
        try:
            new = reopen(self.viewer, self.recording, **self.choices())
        except (PocoError, OSError) as exc:
            self.status.setText(f"Could not reopen: {exc}")
            return None
        self.status.setText(f"Reopened: {new.n_rois} ROIs at {new.fs:g} Hz")
        if self.reopened is not None:
            self.reopened(new)
        return new
