"""Data layer: the `Recording` model, the readers and writers (`io/`), preprocessing, filters,
train/val/test windows and the simulator. May import: `base`."""
