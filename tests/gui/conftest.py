"""Fixtures for the napari plugin tests: a viewer with the plugin, and files in every format."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from poco_core.data.io import save_recording
from poco_core.data.simulate import simulate_recording

pytest.importorskip("napari")
REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data" / "recording.h5"
PLUGIN = "poco-napari"


@pytest.fixture(autouse=True)
def _settings_dir(tmp_path, monkeypatch):
    """Remembered settings go to a temporary folder, never the user's."""
    monkeypatch.setenv("POCO_CONFIG_DIR", str(tmp_path / "config"))


def _io_test_helper(module: str, name: str):
    """A file writer from the io tests (they write NWB/CaImAn with the real libraries)."""
    spec = importlib.util.spec_from_file_location(module, REPO / "tests" / f"{module}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, name)


@pytest.fixture
def recording_h5(tmp_path) -> Path:
    """A small project-format recording with anatomy and footprints."""
    return save_recording(simulate_recording(n_rois=30, n_frames=1200, seed=1), tmp_path / "rec.h5")


@pytest.fixture
def format_files(tmp_path, recording_h5) -> dict[str, Path]:
    """One readable file or folder per format poco_core reads."""
    traces = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32)
    np.save(tmp_path / "traces.npy", traces)
    np.savez(tmp_path / "traces.npz", traces=traces)
    np.savetxt(tmp_path / "traces.csv", traces, delimiter=",")
    _io_test_helper("test_io_nwb", "write_nwb")(tmp_path / "rec.nwb")
    _io_test_helper("test_io_caiman", "write_caiman")(tmp_path / "caiman.hdf5")
    return {
        "poco-h5": recording_h5,
        "suite2p": REPO / "tests" / "data" / "suite2p_fissa" / "suite2p",
        "triplett": REPO / "tests" / "data" / "triplett_zf_20170215-f3",
        "nwb": tmp_path / "rec.nwb",
        "caiman": tmp_path / "caiman.hdf5",
        "npy": tmp_path / "traces.npy",
        "npz": tmp_path / "traces.npz",
        "csv": tmp_path / "traces.csv",
        "manifest": REPO / "sample_data" / "cohort" / "manifest.json",
    }


@pytest.fixture
def sample_path() -> Path:
    return SAMPLE


@pytest.fixture
def click():
    """click(viewer, (y, x), shift=False): a left click at a world position through napari's dispatch."""
    return _click


def _click(viewer, world_yx, shift: bool = False) -> None:
    from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks

    event = SimpleNamespace(
        position=tuple(viewer.dims.point[:-2]) + tuple(world_yx), view_direction=None,
        dims_displayed=list(viewer.dims.displayed), button=1, modifiers=("Shift",) if shift else (),
        type="mouse_press", handled=False, is_dragging=False, pos=np.zeros(2),
    )
    mouse_press_callbacks(viewer, event)
    event.type = "mouse_release"
    mouse_release_callbacks(viewer, event)
