"""Per-session mixing across units, shared by the multivariate baselines (TSMixer, ModernTCN):
unit counts differ between sessions, so these maps are per-session parameters."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class UnitMixer(nn.Module):
    """Residual MLP over the unit axis (last dim): N -> hidden -> N."""

    def __init__(self, n_units: int, hidden: int, dropout: float):
        super().__init__()
        self.up = nn.Linear(n_units, hidden)
        self.down = nn.Linear(hidden, n_units)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.down(self.drop(F.relu(self.up(x)))))
