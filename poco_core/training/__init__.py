"""Training layer: the optimisation loop, batch sampling, validation metrics, training,
finetuning, checkpoints and restoring models, DDP, and background-job specs.
May import: `base`, `data`, `models`."""
