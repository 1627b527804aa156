"""CalM's settings: the paper's defaults (CALM_SPEC.md §3-4, §6-7) and the `tiny` CPU preset.

`preset="tiny"` swaps every field still at its paper default for the tiny value, so
`--set preset=tiny --set d_model=64` keeps the explicit 64 (an explicit paper-default value
is indistinguishable from the default and is replaced too).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from poco_core.models.base import BaseConfig

TINY = {
    "nq_dim": 32, "codebook_size": 32, "nq_enc_layers": 1, "nq_dec_layers": 1, "nq_heads": 2, "queue_size": 256,
    "d_model": 32, "layers": 2, "heads": 2, "ff": 64, "nq_steps": 100, "nq_traces_per_step": 1024,
    "revive_every": 20, "usage_decay": 0.9, "max_train_units": 64,
}
PRESETS = {"": {}, "tiny": TINY}


@dataclass
class CalMConfig(BaseConfig):
    preset: str = ""
    # neural quantizer (VQ-VAE over single-neuron traces)
    nq_dim: int = 512
    codebook_size: int = 128
    window: int = 4  # frames per token (L)
    nq_enc_layers: int = 4
    nq_dec_layers: int = 4
    nq_heads: int = 4
    nq_ff_mult: int = 4
    nq_dropout: float = 0.1
    alpha_pearson: float = 1.0
    w_embed: float = 1.0
    w_commit: float = 0.5
    w_entropy: float = 0.5
    tau_start: float = 2.5
    tau_end: float = 0.01
    w_orth: float = 0.1
    ar_horizon: int = 4
    w_ar_ce: float = 0.5
    w_ar_align: float = 0.5
    usage_decay: float = 0.99
    revive_every: int = 100  # 0 turns dead-code revival off
    queue_size: int = 8192
    warmup_frac: float = 0.1  # codebook frozen for this share of the quantizer steps
    nq_steps: int = 20000
    nq_traces_per_step: int = 4096
    # dual-axis transformer
    d_model: int = 512
    layers: int = 6
    heads: int = 8
    ff: int = 2048
    dropout: float = 0.1
    ss_prob: float = 0.6
    ss_block: int = 6
    nr_prob: float = 0.1
    nr_k: int = 12
    w_ss: float = 1.0
    w_nr: float = 1.0
    max_train_units: int = 512
    # rollout
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 0
    n_samples: int = 1

    RUNTIME: ClassVar[tuple[str, ...]] = ("temperature", "top_k", "n_samples")  # the rollout settings

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown CalM preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        paper = {f.name: f.default for f in fields(CalMConfig)}
        for key, value in PRESETS[self.preset].items():
            if getattr(self, key) == paper[key]:
                setattr(self, key, value)

    @property
    def warmup_steps(self) -> int:
        return int(self.warmup_frac * self.nq_steps)
