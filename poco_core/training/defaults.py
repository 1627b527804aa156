"""Defaults the Python API, the CLI and the GUI share for training and finetuning, defined once.

Values are the paper's (POCO_SPEC.md, "Training" and "Finetuning on a new session"): AdamW at
lr 3e-4, batches of 64 windows; training runs 5,000 steps (single-session) validating every 100;
finetuning 2,000 steps validating every 20, on a bounded, evenly spread sample of at most 64
validation windows per session (``max_val_windows=None`` validates on all of them).
"""
from __future__ import annotations

FINETUNE_MODES = ("embeddings", "embeddings+mlp", "all")
TRAIN_DEFAULTS = {"steps": 5000, "lr": 3e-4, "batch_size": 64, "val_every": 100, "max_val_windows": None}
FINETUNE_DEFAULTS = {"steps": 2000, "lr": 3e-4, "batch_size": 64, "val_every": 20, "max_val_windows": 64}
