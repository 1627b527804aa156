"""CURBD's three-region test network, written for poco_core from its published design (shared/CIRCUIT_SPEC.md;
the design of rajanlab/CURBD's ``threeRegionSim``, reimplemented, no code copied).

Three randomly connected tanh rate regions: A is chaotic (g = 1.8) and gets no external input; B
(g = 1.5) is driven by a sequence, a Gaussian bump sweeping its units; C (g = 1.5) is driven, with
the opposite sign, by a fixed-point population that switches once between two bump patterns. Half
the units of B and C each receive their own driver unit (one-to-one, weight 1); ``frac_inter`` of the
units of each region receive the same-index unit of each other region with weight ``amp_inter``. The
drivers are *not* recorded. The recording is the rates of A, B and C every ``dt_data``; the generating
weights, the drivers' input current, the recurrent current J r and the drivers themselves come back
with it, so a fit's currents can be compared with the truth.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from poco_core.data.recording import Recording

REGIONS = ("A", "B", "C")


@dataclass
class CircuitSim:
    """The generating network and what it did: rates (T, N), inputs (T, N) from the hidden drivers,
    recurrent (T, N) = J r, regions (N,), J (N, N), drivers {"sequence", "fixed_point"}: (T, units)."""

    rates: np.ndarray
    inputs: np.ndarray
    recurrent: np.ndarray
    regions: np.ndarray
    J: np.ndarray
    dt_data: float
    drivers: dict[str, np.ndarray] = field(default_factory=dict)

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


def _bump(m: int, centre: np.ndarray, width: float) -> np.ndarray:
    """(len(centre), m) Gaussian bumps over unit index i: exp(-(i - width - 2 m c)^2 / (2 width^2))."""
    i = np.arange(m)[None, :]
    return np.exp(-((i - width - 2 * m * np.asarray(centre)[:, None]) ** 2) / (2 * width ** 2))


def _as_drive(x: np.ndarray) -> np.ndarray:
    """The regularised inverse logistic of a pattern in [0, 1], min-max scaled to [0, 1]."""
    h = np.log((x + 0.01) / (1 - x + 0.01))
    h = h - h.min()
    return h / h.max()


def hidden_drivers(m: int, n_frames: int, bump_std: float = 0.2, lead: float = 1 / 6, sweep_end: float = 0.4,
                   switch: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """The sequence and fixed-point populations, (T, m) each, in [0, 1]. After a lead of ``lead`` of the
    frames holding the first pattern, time u runs 0 -> 1: the bump (width bump_std m) sweeps until u =
    sweep_end and then stays; the fixed point holds the bump of u = 0.01 until u = switch, then that of
    u = 0.3 (CURBD's layout: 2 s lead, 10 s trial)."""
    n_lead = round(lead * n_frames)
    u = np.linspace(0, 1, n_frames - n_lead)
    width = bump_std * m
    seq = _as_drive(_bump(m, np.minimum(u, sweep_end), width))
    fixed = _as_drive(np.where((u < switch)[:, None], _bump(m, [0.01], width), _bump(m, [0.3], width)))
    hold = lambda x: np.vstack([np.repeat(x[:1], n_lead, axis=0), x])  # noqa: E731
    return hold(seq), hold(fixed)


def simulate_three_regions(n_per_region: int = 100, n_frames: int = 1200, dt_data: float = 0.01, tau: float = 0.1,
                           g: tuple[float, float, float] = (1.8, 1.5, 1.5), frac_inter: float = 0.05,
                           amp_inter: float = 0.2, frac_external: float = 0.5, amp_in: float = 1.0,
                           bump_std: float = 0.2, substeps: int = 5, state_noise: float = 0.0,
                           seed: int = 0) -> CircuitSim:
    """Euler at dt_data / substeps from x(0) ~ U[-1, 1]; ``amp_in`` scales both drivers (+ into B, - into
    C; 0 gives an autonomous teacher); ``amp_inter`` 0.2 is the MATLAB reference's (0.02 its Python's);
    ``state_noise`` adds state_noise * sqrt(dt / tau) * N(0, 1) to x at every Euler step."""
    rng = np.random.default_rng(seed)
    m, n = n_per_region, 3 * n_per_region
    region = np.repeat(np.arange(3), m)
    j = np.zeros((n, n))
    for k in range(3):
        j[k * m:(k + 1) * m, k * m:(k + 1) * m] = g[k] * rng.standard_normal((m, m)) / math.sqrt(m)
    for tgt in range(3):
        for src in range(3):
            if src != tgt:
                units = rng.permutation(m)[: round(frac_inter * m)]
                j[tgt * m + units, src * m + units] = amp_inter
    seq, fixed = hidden_drivers(m, n_frames, bump_std)
    drive = np.zeros((n_frames, n))
    for k, source, sign in ((1, seq, 1.0), (2, fixed, -1.0)):
        fed = np.zeros(m)
        fed[rng.permutation(m)[: round(frac_external * m)]] = 1.0
        drive[:, k * m:(k + 1) * m] = sign * amp_in * source * fed
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
    return CircuitSim(rates, drive, recurrent, np.array(REGIONS)[region], j, dt_data,
                      {"sequence": seq, "fixed_point": fixed})


def sequence_bump(n_units: int = 500, n_frames: int = 165, sigma: float = 0.0343, dt_data: float = 0.0641) -> Recording:
    """PINning's sequence target: d_i(t) = exp(-(i - N t / t_end)^2 / (2 (sigma N)^2)), a bump sweeping
    every unit once (the rajanlab/pset3 demo's target; 165 frames of 0.0641 s)."""
    i = np.arange(n_units)[None, :]
    centre = n_units * np.arange(n_frames)[:, None] / (n_frames - 1)
    d = np.exp(-((i - centre) ** 2) / (2 * (sigma * n_units) ** 2))
    return Recording(d.astype(np.float32), fs=1.0 / dt_data, roi_ids=np.array([f"u{k}" for k in range(n_units)]),
                     session="sequence", dataset="circuit_sim", provenance={"format": "simulated", "target": "sequence bump"})
