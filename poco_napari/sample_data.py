"""File > Open Sample: the synthetic recording and cohort from ``sample_data/`` (simulated on
the fly when the folder is absent, e.g. in an installed package)."""
from __future__ import annotations

from pathlib import Path

from poco_core.data.simulate import simulate_cohort, simulate_recording
from poco_napari.layers import LayerData
from poco_napari.reader import layers_for, read_recordings

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data"
N_ROIS, N_FRAMES = 120, 4096


def sample_recording() -> list[LayerData]:
    """One synthetic fish: anatomy, ROI footprints by region, traces."""
    path = SAMPLE_DIR / "recording.h5"
    return layers_for(read_recordings(path) if path.exists() else [simulate_recording(N_ROIS, N_FRAMES)])


def sample_cohort() -> list[LayerData]:
    """Several similar synthetic fish (the cohort manifest), side by side."""
    path = SAMPLE_DIR / "cohort" / "manifest.json"
    return layers_for(read_recordings(path) if path.exists() else simulate_cohort(3, N_ROIS, N_FRAMES))
