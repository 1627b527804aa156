"""Defaults the Python API, the CLI and the GUI share for training and finetuning, defined once."""
from __future__ import annotations

FINETUNE_MODES = ("embeddings", "embeddings+mlp", "all")
# finetuning validates every 20 steps, so on a bounded, evenly spread sample of the val windows
# (max_val_windows=None validates on all of them)
FINETUNE_DEFAULTS = {"val_every": 20, "steps": 2000, "max_val_windows": 64}
