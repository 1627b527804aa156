"""CURBD's three-region test network, written for poco_core from its description (shared/CIRCUIT_SPEC.md).

Three randomly connected tanh rate regions A, B, C (g within regions, sparse inter-region links of
``frac_inter`` with amplitude ``amp_inter``). Hidden drivers that are *not* recorded: a Gaussian bump
sweeping across a sequence population feeds a fraction of A, a population stepping between fixed
points feeds a fraction of B; C has no external input. The recording is the rates of A, B and C
sampled every ``dt_data``; the generating weights, the drivers' input current and the recurrent
current J r come back with it, so a fit's currents can be compared with the truth.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from poco_core.data.recording import Recording

REGIONS = ("A", "B", "C")


@dataclass
class CircuitSim:
    """The generating network and what it did: rates (T, N), inputs (T, N) from the hidden drivers,
    recurrent (T, N) = J r, regions (N,), J (N, N)."""

    rates: np.ndarray
    inputs: np.ndarray
    recurrent: np.ndarray
    regions: np.ndarray
    J: np.ndarray
    dt_data: float

    def recording(self, session: str = "three_regions") -> Recording:
        """The rates as a Recording with region labels and point positions (three side-by-side discs)."""
        n = self.rates.shape[1]
        rng = np.random.default_rng(0)
        k = np.searchsorted(REGIONS, self.regions)
        angle, radius = rng.uniform(0, 2 * np.pi, n), 18 * np.sqrt(rng.uniform(0, 1, n))
        centroids = np.column_stack([50 + radius * np.sin(angle), 30 + 50 * k + radius * np.cos(angle)])
        return Recording(
            self.rates.astype(np.float32), fs=1.0 / self.dt_data, roi_ids=np.array([f"u{i}" for i in range(n)]),
            session=session, dataset="circuit_sim", regions=self.regions, centroids=centroids,
            provenance={"format": "simulated", "simulator": "poco_core.data.circuit_sim.simulate_three_regions"},
        )


def simulate_three_regions(n_per_region: int = 100, n_frames: int = 1200, dt_data: float = 0.01, tau: float = 0.1,
                           g: float = 1.8, frac_inter: float = 0.05, amp_inter: float = 0.2, frac_external: float = 0.5,
                           amp_in: float = 1.0, bump_std: float = 0.2, substeps: int = 5, state_noise: float = 0.0,
                           seed: int = 0) -> CircuitSim:
    """Euler at dt_data / substeps from x(0) ~ U[-1, 1]; ``amp_in = 0`` gives an autonomous teacher;
    ``state_noise`` adds state_noise * sqrt(dt / tau) * N(0, 1) to x at every Euler step."""
    rng = np.random.default_rng(seed)
    m, n = n_per_region, 3 * n_per_region
    region = np.repeat(np.arange(3), m)
    same = region[:, None] == region[None, :]
    j = np.where(same, g * rng.standard_normal((n, n)) / np.sqrt(m), 0.0)
    links = (~same) & (rng.random((n, n)) < frac_inter)
    j[links] = amp_inter * rng.standard_normal(links.sum())
    t_s = np.arange(n_frames) * dt_data
    # sequence driver: a bump sweeping the m sequence units once over the recording
    centre = np.linspace(0, 1, n_frames)[:, None]
    seq = np.exp(-((np.linspace(0, 1, m)[None, :] - centre) ** 2) / (2 * (bump_std / 4) ** 2))
    # fixed-point driver: 4 random patterns, each held for a quarter of the recording
    patterns = rng.standard_normal((4, m))
    fixed = patterns[np.minimum((4 * t_s / (n_frames * dt_data)).astype(int), 3)]
    drive = np.zeros((n_frames, n))
    for k, source in ((0, seq), (1, fixed)):
        w = rng.standard_normal((m, m)) / np.sqrt(m) * (rng.random(m) < frac_external)[:, None]
        drive[:, k * m:(k + 1) * m] = amp_in * source @ w.T
    x = rng.uniform(-1, 1, n)
    rates, recurrent = np.empty((n_frames, n)), np.empty((n_frames, n))
    a = dt_data / substeps / tau
    for k in range(n_frames):
        r = np.tanh(x)
        rates[k], recurrent[k] = r, j @ r
        for _ in range(substeps):
            x = x + a * (-x + j @ np.tanh(x) + drive[k])
            if state_noise:
                x = x + state_noise * np.sqrt(a) * rng.standard_normal(n)
    return CircuitSim(rates, drive, recurrent, np.array(REGIONS)[region], j, dt_data)


def sequence_bump(n_units: int = 500, n_frames: int = 165, sigma: float = 0.0343, dt_data: float = 0.0641) -> Recording:
    """PINning's sequence target: d_i(t) = exp(-(i - N t / t_end)^2 / (2 (sigma N)^2)), a bump sweeping
    every unit once (the rajanlab/pset3 demo's target; 165 frames of 0.0641 s)."""
    i = np.arange(n_units)[None, :]
    centre = n_units * np.arange(n_frames)[:, None] / (n_frames - 1)
    d = np.exp(-((i - centre) ** 2) / (2 * (sigma * n_units) ** 2))
    return Recording(d.astype(np.float32), fs=1.0 / dt_data, roi_ids=np.array([f"u{k}" for k in range(n_units)]),
                     session="sequence", dataset="circuit_sim", provenance={"format": "simulated", "target": "sequence bump"})
