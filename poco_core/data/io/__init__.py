"""Readers for every supported recording format, the project HDF5 writer, and input checks."""
from poco_core.data.io.dataset import load_dataset, read_regions
from poco_core.data.io.detect import detect_format
from poco_core.data.io.h5 import append_frames, save_recording
from poco_core.data.io.load import load_recording, reader_options
from poco_core.data.io.validate import check_min_length, find_problems

__all__ = [
    "append_frames",
    "check_min_length",
    "detect_format",
    "find_problems",
    "load_dataset",
    "load_recording",
    "read_regions",
    "reader_options",
    "save_recording",
]
