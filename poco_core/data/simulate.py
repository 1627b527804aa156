"""Synthetic recordings: the paper's chaotic RNN (appendix C.2) with regions, cohorts and calcium.

Dynamics: tau_i dh/dt = -h + W tanh(h) + sqrt(2 tau_i sigma^2) xi, Euler dt = 0.01, h(0) ~ U[-1, 1];
tanh(h) is z-scored per neuron and averaged over every 5 Euler steps to give one frame. Frames are
labelled at ``fs`` = 5 Hz (0.2 s, the calcium kernel's step in CalM), i.e. one RNN time unit is 4 s.

Regions: W_ij = gain_r(i) * M[r(i), r(j)] * J_ij with J_ij ~ N(0, 1/N); M is 1 within a region and
``CROSS_COUPLING`` between regions, rows rescaled so a neuron's summed input variance stays
gain^2 (g = 2 is chaotic as in the paper). Regions have their own tau and gain, and some a shared
rhythmic input: d_r(t) = drive_r sin(phi_r(t)), phi_r advancing 2 pi / period_r per time unit with
phase diffusion (``PHASE_NOISE``), each neuron receiving it with a weight in [0.5, 1.5]. The
coupling between regions is weak, so each region's own timescale and rhythm dominate its neurons'
dynamics and a classifier on each trace's statistics tells the regions apart (issue 16: with
coupling 0.3 and no rhythm the regions were barely distinguishable, 0.58 against 0.48 for chance).
``regions=1`` is exactly the paper's homogeneous RNN (g = 2, tau = 0.1, no rhythm).

Cohorts: a template population of max(n_rois) neurons with fixed positions and regions; each
individual records a random subset of it and J_i = sqrt(1 - sigma_J^2) J_template + sigma_J J_dev,i.

Calcium (as CalM): Poisson spikes from the rates, convolved with a double-exponential kernel
(rise 0.05 s, decay 2 s) sampled at the frame step, plus small observation noise, on a per-ROI
baseline fluorescence, so traces are positive and suit dF/F.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp
from scipy import ndimage, signal

from poco_core.base.errors import PocoError
from poco_core.base.outputs import write_text
from poco_core.data.recording import Recording

DT = 0.01
SUBSTEPS = 5
FS = 5.0
CROSS_COUPLING = 0.1
PHASE_NOISE = 1.0  # sd of the rhythm's phase diffusion per sqrt(time unit), radians
IMAGE_SHAPE = (160, 128)
ROI_RADIUS = 3
ROI_SIGMA = 1.5


@dataclass(frozen=True)
class Region:
    """An ellipse of the field of view (centre and radii as fractions of Ly, Lx) and its dynamics:
    time constant, recurrent gain, and the amplitude and period (RNN time units) of its rhythm."""

    name: str
    center: tuple[float, float]
    radii: tuple[float, float]
    tau: float
    gain: float
    drive: float = 0.0
    period: float = 1.0


DEFAULT_REGIONS = (
    Region("tectum", (0.38, 0.5), (0.15, 0.40), tau=0.1, gain=2.0),
    Region("cerebellum", (0.60, 0.5), (0.07, 0.32), tau=0.03, gain=3.0, drive=1.0, period=0.25),
    Region("hindbrain", (0.82, 0.5), (0.14, 0.22), tau=0.25, gain=2.0, drive=1.5, period=1.0),
    Region("habenula", (0.14, 0.5), (0.07, 0.18), tau=1.0, gain=1.5, drive=1.0, period=4.0),
)


@dataclass
class Layout:
    """The template population shared by a cohort: positions (N, 2) y, x and region index (N,)."""

    regions: tuple[Region, ...]
    image_shape: tuple[int, int]
    positions: np.ndarray
    region_index: np.ndarray


@dataclass
class Network:
    """One individual: which template neurons it records, its weights W (N, N), tau (N,), and
    each neuron's region (N,) and weight on that region's rhythm (N,; 0 without one)."""

    index: np.ndarray
    weights: np.ndarray
    tau: np.ndarray
    region: np.ndarray
    drive: np.ndarray


def _regions(regions: int | Sequence[Region]) -> tuple[Region, ...]:
    if isinstance(regions, int):
        if not 1 <= regions <= len(DEFAULT_REGIONS):
            raise PocoError(f"regions must be 1..{len(DEFAULT_REGIONS)} or a list of Region, got {regions}")
        return DEFAULT_REGIONS[:regions]
    return tuple(regions)


def make_layout(n: int, regions: int | Sequence[Region], rng: np.random.Generator,
                image_shape: tuple[int, int] = IMAGE_SHAPE) -> Layout:
    """Place ``n`` neurons uniformly inside region ellipses, regions sized by area; sorted by
    region then rostro-caudal position."""
    regs = _regions(regions)
    area = np.array([r.radii[0] * r.radii[1] for r in regs])
    counts = np.floor(n * area / area.sum()).astype(int)
    counts[np.argsort(-area)[: n - counts.sum()]] += 1
    ly, lx = image_shape
    pos, idx = [], []
    for k, (reg, c) in enumerate(zip(regs, counts)):
        angle = rng.uniform(0, 2 * np.pi, c)
        rad = np.sqrt(rng.uniform(0, 1, c))  # uniform over the ellipse area
        y = (reg.center[0] + reg.radii[0] * rad * np.sin(angle)) * (ly - 1)
        x = (reg.center[1] + reg.radii[1] * rad * np.cos(angle)) * (lx - 1)
        order = np.argsort(y)
        pos.append(np.stack([y, x], 1)[order])
        idx.append(np.full(c, k))
    return Layout(regs, tuple(image_shape), np.concatenate(pos), np.concatenate(idx))


def _coupling(region_index: np.ndarray, regions: tuple[Region, ...]) -> np.ndarray:
    """(N, N) gain * block factor, rows scaled so each neuron's input variance is gain^2."""
    n_r = len(regions)
    frac = np.bincount(region_index, minlength=n_r) / len(region_index)
    m = np.full((n_r, n_r), CROSS_COUPLING) + (1 - CROSS_COUPLING) * np.eye(n_r)
    m /= np.sqrt((m**2 * frac).sum(1, keepdims=True))
    m *= np.array([r.gain for r in regions])[:, None]
    return m[region_index][:, region_index]


def cohort_networks(layout: Layout, n_rois: Sequence[int], sigma_j: float,
                    template_rng: np.random.Generator, rngs: Sequence[np.random.Generator]) -> list[Network]:
    """Individuals sharing the template connectivity; sigma_j in [0, 1] sets how much they differ."""
    if not 0 <= sigma_j <= 1:
        raise PocoError(f"sigma_J must be in [0, 1], got {sigma_j}")
    n_t = len(layout.region_index)
    template = template_rng.standard_normal((n_t, n_t))
    regs = layout.regions
    drive = np.array([regs[k].drive for k in layout.region_index])
    if drive.any():  # drawn only with a rhythm, so rhythm-free layouts keep their random streams
        drive = drive * template_rng.uniform(0.5, 1.5, n_t)
    nets = []
    for n, rng in zip(n_rois, rngs):
        index = np.sort(rng.choice(n_t, n, replace=False)) if n < n_t else np.arange(n_t)
        j = np.sqrt(1 - sigma_j**2) * template[np.ix_(index, index)] + sigma_j * rng.standard_normal((n, n))
        ri = layout.region_index[index]
        nets.append(Network(index, _coupling(ri, regs) * j / np.sqrt(n), np.array([regs[k].tau for k in ri]),
                            ri, drive[index]))
    return nets


def _rhythm(regions: Sequence[Region], n_steps: int, rng: np.random.Generator) -> np.ndarray:
    """(n_steps, R) sin(phi_r) per Euler step, phases from a random start with diffusion; zero
    columns for regions without a rhythm (no draws at all when none has one)."""
    out = np.zeros((n_steps, len(regions)))
    on = [k for k, r in enumerate(regions) if r.drive]
    if on:
        freq = np.array([2 * np.pi / regions[k].period for k in on])
        steps = freq * DT + PHASE_NOISE * np.sqrt(DT) * rng.standard_normal((n_steps, len(on)))
        out[:, on] = np.sin(rng.uniform(0, 2 * np.pi, len(on)) + np.cumsum(steps, 0))
    return out


def run_rnn(net: Network, n_frames: int, rng: np.random.Generator, sigma: float = 0.1,
            regions: Sequence[Region] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Integrate the network (``regions``: their rhythms); returns (z-scored frames, raw
    frame-averaged tanh(h)), both (T, N)."""
    n = len(net.tau)
    h = rng.uniform(-1, 1, n)
    rhythm = _rhythm(regions, n_frames * SUBSTEPS, rng) if net.drive.any() else None
    a = DT / net.tau
    noise_sd = np.sqrt(2 * sigma**2 * DT / net.tau)
    frames = np.empty((n_frames, n))
    total, total_sq = np.zeros(n), np.zeros(n)
    for t in range(n_frames):
        xi = rng.standard_normal((SUBSTEPS, n)) * noise_sd
        acc = np.zeros(n)
        for k in range(SUBSTEPS):
            inp = net.weights @ np.tanh(h)
            if rhythm is not None:
                inp += net.drive * rhythm[t * SUBSTEPS + k, net.region]
            h += a * (-h + inp) + xi[k]
            r = np.tanh(h)
            acc += r
            total_sq += r * r
        total += acc
        frames[t] = acc / SUBSTEPS
    steps = n_frames * SUBSTEPS
    mean = total / steps
    std = np.sqrt(np.maximum(total_sq / steps - mean**2, 1e-12))
    return (frames - mean) / std, frames


def calcium_kernel(fs: float = FS, rise: float = 0.05, decay: float = 2.0) -> np.ndarray:
    """Double-exponential kernel sampled at 1/fs over 5 decay constants, peak 1."""
    t = np.arange(int(np.ceil(5 * decay * fs)) + 1) / fs
    k = np.exp(-t / decay) - np.exp(-t / rise)
    return k / k.max()


def calcium_traces(rates: np.ndarray, fs: float, rng: np.random.Generator, max_rate: float = 2.0,
                   dff_per_spike: float = 0.3, noise: float = 0.02) -> np.ndarray:
    """Fluorescence from frame-averaged tanh(h) in [-1, 1]: Poisson spikes at up to ``max_rate`` Hz,
    calcium kernel, baseline F0 ~ 100 per ROI, Gaussian noise of ``noise`` x F0."""
    spikes = rng.poisson(max_rate * (rates + 1) / 2 / fs)
    ca = signal.lfilter(calcium_kernel(fs), [1.0], spikes, axis=0)
    f0 = 100 * np.exp(0.3 * rng.standard_normal(rates.shape[1]))
    f = f0 * (1 + dff_per_spike * ca + noise * rng.standard_normal(rates.shape))
    return np.maximum(f, 0)


def footprints(positions: np.ndarray, image_shape: tuple[int, int]) -> sp.csr_matrix:
    """Gaussian blob per ROI (radius ``ROI_RADIUS`` px), peak 1, as (N, Ly*Lx) csr."""
    ly, lx = image_shape
    r = np.arange(-ROI_RADIUS, ROI_RADIUS + 1)
    off = np.stack(np.meshgrid(r, r, indexing="ij"), -1).reshape(-1, 2)
    off = off[(off**2).sum(1) <= ROI_RADIUS**2]
    pix = np.round(positions)[:, None, :] + off[None]  # (N, P, 2)
    w = np.exp(-((pix - positions[:, None, :]) ** 2).sum(-1) / (2 * ROI_SIGMA**2))
    ok = (pix[..., 0] >= 0) & (pix[..., 0] < ly) & (pix[..., 1] >= 0) & (pix[..., 1] < lx)
    rows = np.broadcast_to(np.arange(len(positions))[:, None], ok.shape)[ok]
    cols = (pix[..., 0] * lx + pix[..., 1])[ok].astype(np.int64)
    return sp.csr_matrix((w[ok].astype(np.float32), (rows, cols)), shape=(len(positions), ly * lx))


def anatomy(layout: Layout, fp: sp.csr_matrix, brightness: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A mean-projection-like image: dim smoothed region tissue, bright ROI blobs, camera noise."""
    ly, lx = layout.image_shape
    yy, xx = np.mgrid[0:ly, 0:lx] / np.array([ly - 1, lx - 1])[:, None, None]
    tissue = np.zeros((ly, lx))
    for reg in layout.regions:
        tissue += ((yy - reg.center[0]) / reg.radii[0]) ** 2 + ((xx - reg.center[1]) / reg.radii[1]) ** 2 <= 1
    img = 0.25 * ndimage.gaussian_filter(np.minimum(tissue, 1), 2.0)
    img += np.asarray(fp.T @ (brightness / brightness.max())).reshape(ly, lx)
    img += 0.02 * rng.standard_normal((ly, lx))
    return img.astype(np.float32)


def simulate_cohort(n_sessions: int = 5, n_rois: int | Sequence[int] = 300, n_frames: int = 4096,
                    sigma_j: float = 0.1, regions: int | Sequence[Region] = 4, seed: int = 0,
                    calcium: bool = False, fs: float = FS, sigma: float = 0.1,
                    image_shape: tuple[int, int] = IMAGE_SHAPE, dataset: str = "synthetic",
                    prefix: str = "fish") -> list[Recording]:
    """Similar individuals (sessions ``fish01``...) sharing regions and template connectivity.

    ``n_rois`` is one count or one per session. Reproducible from ``seed``; session i depends
    only on the seed, its own count and the largest count, not on the number of sessions.
    """
    counts = [int(n_rois)] * n_sessions if np.isscalar(n_rois) else [int(c) for c in n_rois]
    if n_sessions < 1 or len(counts) != n_sessions or min(counts) < 1 or n_frames < 1:
        raise PocoError(f"need >= 1 session, one ROI count (>= 1) per session and >= 1 frame; got "
                        f"{n_sessions} sessions, n_rois={n_rois}, n_frames={n_frames}")
    template_ss, *session_ss = np.random.SeedSequence(seed).spawn(1 + n_sessions)
    template_rng = np.random.default_rng(template_ss)
    layout = make_layout(max(counts), regions, template_rng, image_shape)
    rngs = [np.random.default_rng(s) for s in session_ss]
    nets = cohort_networks(layout, counts, sigma_j, template_rng, rngs)
    provenance = {"simulator": "poco_core.data.simulate", "seed": seed, "sigma_J": sigma_j, "sigma": sigma,
                  "calcium": calcium, "n_frames": n_frames, "image_shape": list(image_shape)}
    return [_recording(layout, net, rng, n_frames, fs, sigma, calcium, f"{prefix}{i + 1:02d}", dataset, provenance)
            for i, (net, rng) in enumerate(zip(nets, rngs))]


def _recording(layout: Layout, net: Network, rng: np.random.Generator, n_frames: int, fs: float,
               sigma: float, calcium: bool, session: str, dataset: str, provenance: dict) -> Recording:
    z, rates = run_rnn(net, n_frames, rng, sigma, layout.regions)
    traces = calcium_traces(rates, fs, rng) if calcium else z
    pos = layout.positions[net.index] + rng.normal(0, 0.5, (len(net.index), 2))
    pos = np.clip(pos, 0, np.array(layout.image_shape) - 1)
    fp = footprints(pos, layout.image_shape)
    region_names = np.array([layout.regions[k].name for k in layout.region_index[net.index]])
    n = len(net.index)
    return Recording(
        traces=traces.astype(np.float32), fs=fs, roi_ids=np.array([f"roi{i:04d}" for i in range(n)]),
        session=session, dataset=dataset, footprints=fp, centroids=pos,
        anatomy=anatomy(layout, fp, rates.std(0) + 0.5, rng), regions=region_names,
        roi_names=np.array([f"{name}-{i:04d}" for i, name in enumerate(region_names)]),
        provenance={**provenance, "session_rois": n},
        roi_info={"tau": net.tau.astype(np.float32), "template_index": net.index.astype(np.int64)},
    )


def simulate_recording(n_rois: int = 300, n_frames: int = 4096, regions: int | Sequence[Region] = 4,
                       seed: int = 0, calcium: bool = False, fs: float = FS, sigma: float = 0.1,
                       image_shape: tuple[int, int] = IMAGE_SHAPE, session: str = "fish01",
                       dataset: str = "synthetic") -> Recording:
    """One individual: the template network itself (a cohort of one with sigma_J = 0)."""
    (rec,) = simulate_cohort(1, n_rois, n_frames, 0.0, regions, seed, calcium, fs, sigma, image_shape, dataset)
    rec.session = session
    return rec


def write_cohort(recs: Sequence[Recording], folder: str | Path, held_out: int = 0) -> list[Path]:
    """Write ``<session>.h5`` per recording plus ``manifest.json`` (for ``load_dataset``) listing all
    but the last ``held_out`` sessions, which ``heldout.json`` lists instead (for finetuning)."""
    from poco_core.data.io import (
        save_recording,  # the project HDF5 writer; io pulls in h5py and the readers
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [save_recording(rec, folder / f"{rec.session}.h5") for rec in recs]
    split = len(recs) - held_out
    for name, part in (("manifest.json", recs[:split]), ("heldout.json", recs[split:])):
        if part:
            manifest = {"dataset": part[0].dataset, "sessions": [{"path": f"{r.session}.h5", "session": r.session} for r in part]}
            write_text(folder / name, json.dumps(manifest, indent=2) + "\n")
            paths.append(folder / name)
    return paths


def make_sample_data(out_dir: str | Path) -> list[Path]:
    """Regenerate ``sample_data/``: ``recording.h5`` (one calcium-imaging-like fish, 250 ROIs x
    3000 frames) and ``cohort/`` (5 rate-based fish, sigma_J 0.2; fish05 held out)."""
    from poco_core.data.io import save_recording

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rec = simulate_recording(n_rois=250, n_frames=3000, seed=0, calcium=True, session="fish01", dataset="synthetic")
    cohort = simulate_cohort(5, [150, 120, 170, 140, 160], 1500, sigma_j=0.2, seed=1, dataset="synthetic-cohort")
    return [save_recording(rec, out / "recording.h5"), *write_cohort(cohort, out / "cohort", held_out=1)]
