"""npe2 reader: every format poco_core reads becomes anatomy + ROI layers (see ``layers.py``).

A file poco_core cannot read never raises into napari: the user gets a notification naming the
file and the problem, and napari gets the "nothing to show" sentinel ``[(None,)]``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from napari.utils.notifications import show_error, show_warning

from poco_core.base.errors import PocoError
from poco_core.data.io import load_dataset, load_recording
from poco_core.data.io.dataset import MANIFEST_SUFFIXES
from poco_core.data.recording import Recording
from poco_napari import roi_style
from poco_napari.layers import LayerData, layers_width, recording_layers
from poco_napari.selection import link_current_viewer
from poco_napari.store import recording_of

NOTHING: list = [(None,)]  # napari's "read fine, no layers" sentinel
GAP = 16  # pixels between recordings laid side by side


def get_reader(path: str | Sequence[str]) -> Callable[[str | Sequence[str]], list] | None:
    """npe2 get_reader: accept folders and the extensions napari.yaml lists; the content decides
    the format when reading."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    return read_paths if all(Path(p).exists() for p in paths) else None


def read_recordings(path: str | Path) -> list[Recording]:
    """All recordings at a path: one file, a recording folder (suite2p), a folder of
    recordings or a YAML/JSON manifest."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() not in MANIFEST_SUFFIXES:
        return [load_recording(path)]
    return load_dataset(path)


def occupied_width(viewer) -> float:
    """Where the next recording may start (x, world pixels): right of every POCO layer already
    open, so a recording opened after another does not land on top of it."""
    edges = [float(layer.extent.world[1][-1]) + GAP for layer in getattr(viewer, "layers", [])
             if recording_of(layer) is not None and layer.metadata.get("poco_role") in ("rois", "anatomy")]
    return max(edges, default=0.0)


def layers_for(recs: Sequence[Recording], start_x: float | None = None) -> list[LayerData]:
    """Layers of several recordings, laid side by side so none hides another, starting at
    ``start_x`` (default: right of the recordings the current viewer already shows)."""
    import napari

    layers: list[LayerData] = []
    x = occupied_width(napari.current_viewer()) if start_x is None else start_x
    for rec in recs:
        new = recording_layers(rec, translate=(0.0, x))
        layers += new
        x += layers_width(new) + GAP
        for warning in rec.provenance.get("warnings", []):
            show_warning(f"{rec.source or rec.session}: {warning}")
    link_current_viewer()
    viewer = napari.current_viewer()
    if viewer is not None:
        roi_style.connect_viewer(viewer)
    return layers


def read_paths(path: str | Sequence[str]) -> list:
    """Read one or several paths; a path that fails is reported and skipped."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    recs: list[Recording] = []
    for p in paths:
        try:
            recs += read_recordings(p)
        except (PocoError, OSError) as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            show_error(f"POCO could not open {Path(p).name}: {problem}\n({p})")
        except Exception as exc:  # a reader bug must not take napari's file dialog down with it
            show_error(f"POCO could not open {Path(p).name}: unexpected {type(exc).__name__}: {exc}\n({p})")
    if not recs:
        return NOTHING
    try:
        return layers_for(recs)
    except Exception as exc:  # e.g. layers of a recording no check foresaw
        show_error(f"POCO could not show {', '.join(Path(p).name for p in paths)}: {type(exc).__name__}: {exc}")
        return NOTHING
