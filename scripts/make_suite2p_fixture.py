"""Make ``tests/data/suite2p_sim/``: a simulated two-photon movie run through the REAL suite2p 1.1.0.

What it makes
-------------
1. A small synthetic two-photon movie (128 x 128 px, 400 frames, 30 Hz, uint16 photon counts):
   an anatomy-like static background (smooth tissue texture with dark "vessels"), ~60 soma-like
   footprints (soft elliptical disks of radius 4-6 px with a dimmer nucleus, some overlapping),
   6 thin dendrite-like processes (suite2p 1.1.0 found none of them with seed 0), calcium
   traces (Poisson spikes * double-exponential kernel, rise 0.05 s, decay 1.0 s), a neuropil
   background made of broad out-of-focus blobs carrying their own calcium activity, Poisson shot
   noise, and per-frame rigid motion: a slow drift plus small random jitter (subpixel for most
   frames, exactly integer for ~20 % of them).
2. ``movie.tif``: the movie as a multi-page LZMA-compressed uint16 TIFF (tifffile; lossless, read by the
   standard library's lzma without imagecodecs; 4.6 MB against 5.6 MB with zlib).
3. ``ground_truth.npz``: the injected per-frame shifts, true traces, spikes, footprints (csr parts),
   centroids, kinds, static background and neuropil (see GROUND TRUTH below).
4. Runs suite2p 1.1.0 (rigid registration, sparsery detection, extraction, deconvolution,
   built-in classifier, NWB export) on an uncompressed copy of the movie, then copies the small
   outputs (no ``data.bin``) to ``tests/data/suite2p_sim/suite2p/`` (``ophys.nwb`` and the
   top-level ``db.npy``/``settings.npy``) and ``suite2p/plane0/`` (``F, Fneu, spks, iscell, stat,
   ops, db, settings, reg_outputs, detect_outputs .npy``).
5. Prints checks: ROI/cell counts, correlation and error of suite2p's offsets vs the injected
   shifts, NWB series names and rates.

Shift sign convention (GROUND TRUTH ``shifts`` = (T, 2) [dy, dx] in px): frame t shows the scene
moved by +dy rows (down) and +dx columns (right), i.e. ``frame_t(y, x) = scene(y - dy, x - dx)``;
the footprints in the ground truth are in scene (unshifted) coordinates. suite2p's rigid offsets
``reg_outputs['yoff'/'xoff']`` have the SAME sign (suite2p undoes them with
``torch.roll(frame, (-yoff, -xoff))``), up to a constant (its reference image is built from the
data) and are INTEGER in suite2p 1.1.0 rigid mode (no subpixel rigid estimate).

How to run
----------
This needs a separate virtual environment with suite2p (suite2p is NOT a project dependency;
never add it to pyproject)::

    python3.11 -m venv /work/s2p_venv
    /work/s2p_venv/bin/pip install torch==2.13.0        # first: CPU build from local disk
    /work/s2p_venv/bin/pip install suite2p==1.1.0 "pynwb<4" tifffile
    /work/s2p_venv/bin/python scripts/make_suite2p_fixture.py [--out tests/data/suite2p_sim]
                                                             [--work /tmp/suite2p_sim_run] [--seed 0]

Notes on that venv: suite2p 1.1.0 pulls cellpose -> torchvision 0.29.1, which upgrades torch to
2.14.1 (CUDA wheels, several GB, from the local package mirror); that is fine on CPU
(``torch_device='cpu'``). pynwb 4.x breaks suite2p 1.1.0's NWB export (``TwoPhotonSeries ...
num_samples should be set when format='external'``), so pin ``pynwb<4`` (3.1.3 was used).

The script is self-contained (numpy/scipy/tifffile for the simulation; it does not import
poco_core) and reproducible from ``--seed`` up to suite2p's own numerics. It takes ~20 s on CPU.
The work folder holds suite2p's full output including ``data.bin``; only small files are copied.

GROUND TRUTH (``ground_truth.npz``)
-----------------------------------
``shifts`` (T, 2) float32 [dy, dx]; ``drift`` (T, 2) the slow part; ``integer_frames`` (T,) bool;
``traces`` (T, N) float32 true per-ROI fluorescence F_i(t) in photons/frame at footprint weight 1
(the movie's expected value is background + neuropil + sum_i traces[:, i] * footprint_i);
``spikes`` (T, N) uint8; ``f0`` (N,); ``footprints_data/indices/indptr/shape`` a scipy csr
(N, Ly*Lx) of weights (peak ~1) in scene coordinates; ``centroids`` (N, 2) y, x; ``radius`` (N,);
``kind`` (N,) 0 = soma, 1 = process; ``background`` (Ly, Lx) float32 static anatomy;
``neuropil_maps`` (K, Ly, Lx) float16 and ``neuropil_traces`` (T, K) float32, so the neuropil is
``sum_k neuropil_traces[:, k] * neuropil_maps[k]``; ``fs``; ``seed``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage, signal, sparse

LY, LX = 128, 128
N_FRAMES = 400
FS = 30.0
N_SOMA = 60
N_PROC = 6
N_NEUROPIL = 8
PAD = 16  # canvas margin for shifting
TAU_DECAY, TAU_RISE = 1.0, 0.05

SETTINGS_OVERRIDES = {
    "fs": FS,
    "tau": TAU_DECAY,
    "diameter": [10.0, 10.0],
    "torch_device": "cpu",
    "registration": {"nonrigid": False},
    "detection": {"algorithm": "sparsery"},
    "classification": {"use_builtin_classifier": True},
    "io": {"save_NWB": True, "save_ops_orig": True},
}

KEEP = ["F.npy", "Fneu.npy", "spks.npy", "iscell.npy", "stat.npy", "ops.npy", "db.npy",
        "settings.npy", "reg_outputs.npy", "detect_outputs.npy", "redcell.npy"]


def kernel(fs: float) -> np.ndarray:
    t = np.arange(int(np.ceil(6 * TAU_DECAY * fs)) + 1) / fs
    k = np.exp(-t / TAU_DECAY) - np.exp(-t / TAU_RISE)
    return k / k.max()


def spike_trains(rng, n: int, t: int, fs: float, rate_lo: float, rate_hi: float) -> np.ndarray:
    """Poisson spikes with a slowly modulated (bursty) rate per ROI."""
    base = np.exp(rng.uniform(np.log(rate_lo), np.log(rate_hi), n))
    mod = ndimage.gaussian_filter1d(rng.standard_normal((t, n)), sigma=fs * 0.7, axis=0)
    mod = np.exp(2.0 * mod / (mod.std(0, keepdims=True) + 1e-9))
    rate = base * mod / mod.mean(0, keepdims=True)
    return rng.poisson(rate / fs).astype(np.uint8)


def calcium(spikes: np.ndarray, fs: float) -> np.ndarray:
    return signal.lfilter(kernel(fs), [1.0], spikes.astype(np.float64), axis=0)


def place_centroids(rng, n: int, min_dist: float, margin: float) -> np.ndarray:
    pts: list[np.ndarray] = []
    while len(pts) < n:
        p = rng.uniform([margin, margin], [LY - margin, LX - margin])
        if all(np.hypot(*(p - q)) >= min_dist for q in pts):
            pts.append(p)
    return np.array(pts)


def soma_footprint(c: np.ndarray, r: float, rng, shape) -> np.ndarray:
    """Soft ellipse of mean radius r with a dim nucleus; canvas coordinates include PAD."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    ang = rng.uniform(0, np.pi)
    ar = rng.uniform(0.8, 1.25)
    dy, dx = yy - (c[0] + PAD), xx - (c[1] + PAD)
    u = (dy * np.cos(ang) + dx * np.sin(ang)) * np.sqrt(ar)
    v = (-dy * np.sin(ang) + dx * np.cos(ang)) / np.sqrt(ar)
    rho = np.hypot(u, v)
    w = 1.0 / (1.0 + np.exp((rho - r) / 0.6))
    w *= 1.0 - 0.45 * np.exp(-rho**2 / (2 * (r / 2.6) ** 2))
    w /= w.max()
    w[w < 0.03] = 0
    return w


def process_footprint(rng, shape) -> tuple[np.ndarray, np.ndarray]:
    """A thin curved dendrite-like segment (20-35 px long, ~1.5 px wide)."""
    y0, x0 = rng.uniform(15, LY - 15), rng.uniform(15, LX - 15)
    ang, length = rng.uniform(0, 2 * np.pi), rng.uniform(20, 35)
    s = np.linspace(-length / 2, length / 2, 200)
    curv = rng.uniform(-0.03, 0.03)
    ys = y0 + s * np.sin(ang) + curv * s**2 * np.cos(ang)
    xs = x0 + s * np.cos(ang) - curv * s**2 * np.sin(ang)
    img = np.zeros(shape)
    ok = (ys >= 0) & (ys < LY) & (xs >= 0) & (xs < LX)
    np.add.at(img, (np.round(ys[ok]).astype(int) + PAD, np.round(xs[ok]).astype(int) + PAD), 1.0)
    img = ndimage.gaussian_filter(img, 0.8)
    img /= img.max()
    img[img < 0.05] = 0
    return img, np.array([y0, x0])


def render(seed: int):
    rng = np.random.default_rng(seed)
    cy, cx = LY + 2 * PAD, LX + 2 * PAD
    shape = (cy, cx)
    t = N_FRAMES

    # static anatomy: smooth tissue texture + dark vessels
    tex = ndimage.gaussian_filter(rng.standard_normal(shape), 6.0)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    fine = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
    fine /= fine.std()
    vessels = np.zeros(shape)
    yy, xx = np.mgrid[0:cy, 0:cx]
    for _ in range(3):
        a, b = rng.uniform(0, np.pi), rng.uniform(0.2 * cx, 0.8 * cx)
        d = np.abs((xx - b) * np.cos(a) + (yy - cy / 2) * np.sin(a) + 8 * np.sin(yy / 17.0 + a))
        vessels = np.maximum(vessels, np.exp(-d**2 / (2 * rng.uniform(1.5, 3.0) ** 2)))
    background = (6.0 + 8.0 * tex + 0.8 * fine) * (1 - 0.7 * vessels)
    background = np.maximum(background, 0.5)

    # somas and processes
    cents = place_centroids(rng, N_SOMA, min_dist=7.0, margin=5.0)
    radius = rng.uniform(4.0, 6.0, N_SOMA)
    fps = [soma_footprint(c, r, rng, shape) for c, r in zip(cents, radius)]
    proc_c = []
    for _ in range(N_PROC):
        img, c = process_footprint(rng, shape)
        fps.append(img)
        proc_c.append(c)
    n = len(fps)
    kind = np.r_[np.zeros(N_SOMA, np.int8), np.ones(N_PROC, np.int8)]
    centroids = np.vstack([cents, np.array(proc_c)])
    radius = np.r_[radius, np.full(N_PROC, 1.0)]
    fp_canvas = np.stack(fps).reshape(n, -1)

    # traces: F_i(t) = f0_i * (1 + dff_i * calcium)
    spikes = spike_trains(rng, n, t, FS, 0.15, 1.2)
    ca = calcium(spikes, FS)
    f0 = np.r_[rng.uniform(8.0, 20.0, N_SOMA), rng.uniform(6.0, 10.0, N_PROC)]
    dff = rng.uniform(0.5, 1.2, n)
    traces = f0 * (1.0 + dff * ca)

    # neuropil: broad out-of-focus blobs carrying their own calcium activity
    np_c = rng.uniform([0, 0], [LY, LX], (N_NEUROPIL, 2)) + PAD
    np_sig = rng.uniform(12, 25, N_NEUROPIL)
    np_maps = np.exp(-((yy[None] - np_c[:, 0, None, None]) ** 2 + (xx[None] - np_c[:, 1, None, None]) ** 2)
                     / (2 * np_sig[:, None, None] ** 2))
    np_sp = spike_trains(rng, N_NEUROPIL, t, FS, 2.0, 6.0)
    np_tr = 1.0 + 0.4 * ca_norm(calcium(np_sp, FS))
    np_tr = 3.0 * np_tr

    # motion: slow drift + jitter; ~20 % of frames exactly integer
    tt = np.arange(t) / FS
    drift = np.stack([2.5 * np.sin(2 * np.pi * tt / 11.0) + 0.08 * tt,
                      -2.0 + 4.0 * tt / tt[-1] + 0.8 * np.sin(2 * np.pi * tt / 5.3)], 1)
    shifts = drift + rng.normal(0, 0.6, (t, 2))
    integer_frames = rng.random(t) < 0.2
    shifts[integer_frames] = np.round(shifts[integer_frames])

    movie = np.empty((t, LY, LX), np.uint16)
    for i in range(t):
        expected = background + np.tensordot(np_tr[i], np_maps, 1) + (traces[i] @ fp_canvas).reshape(shape)
        moved = ndimage.shift(expected, shifts[i], order=3, mode="nearest")
        moved = np.maximum(moved[PAD:PAD + LY, PAD:PAD + LX], 0)
        movie[i] = np.minimum(rng.poisson(moved), 65535)

    crop = (slice(None), slice(PAD, PAD + LY), slice(PAD, PAD + LX))
    fp = sparse.csr_matrix(np.stack(fps)[crop].reshape(n, -1).astype(np.float32))
    truth = {
        "shifts": shifts.astype(np.float32), "drift": drift.astype(np.float32), "integer_frames": integer_frames,
        "traces": traces.astype(np.float32), "spikes": spikes, "f0": f0.astype(np.float32),
        "footprints_data": fp.data, "footprints_indices": fp.indices.astype(np.int32),
        "footprints_indptr": fp.indptr.astype(np.int32), "footprints_shape": np.array(fp.shape),
        "centroids": centroids.astype(np.float32), "radius": radius.astype(np.float32), "kind": kind,
        "background": background[PAD:PAD + LY, PAD:PAD + LX].astype(np.float32),
        "neuropil_maps": np_maps[crop].astype(np.float16), "neuropil_traces": np_tr.astype(np.float32),
        "fs": np.float64(FS), "seed": np.int64(seed),
    }
    return movie, truth


def ca_norm(x: np.ndarray) -> np.ndarray:
    return x / (x.max(0, keepdims=True) + 1e-9)


def run_suite2p(tiff: Path, work: Path) -> Path:
    import suite2p

    settings = suite2p.default_settings()
    for k, v in SETTINGS_OVERRIDES.items():
        settings[k] = {**settings[k], **v} if isinstance(v, dict) else v
    db = {"data_path": [str(tiff.parent)], "save_path0": str(work),
          "nplanes": 1, "nchannels": 1, "input_format": "tif"}
    suite2p.run_s2p(db=db, settings=settings)
    return work / "suite2p"


def nested_diff(a: dict, b: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in a.items():
        if isinstance(v, dict) and isinstance(b.get(k), dict):
            out.update(nested_diff(v, b[k], f"{prefix}{k}."))
        elif k not in b or repr(b[k]) != repr(v):
            out[f"{prefix}{k}"] = v
    return out


def report(out: Path, truth: dict) -> None:
    import suite2p

    p0 = out / "suite2p" / "plane0"
    iscell = np.load(p0 / "iscell.npy")
    stat = np.load(p0 / "stat.npy", allow_pickle=True)
    F = np.load(p0 / "F.npy")
    reg = np.load(p0 / "reg_outputs.npy", allow_pickle=True).item()
    settings = np.load(p0 / "settings.npy", allow_pickle=True).item()
    from importlib.metadata import version

    print(f"\nsuite2p {version('suite2p')}: {len(stat)} ROIs, {int(iscell[:, 0].sum())} cells; F {F.shape}")
    print("plane0 files:", sorted(f.name for f in p0.iterdir()))
    print("reg_outputs keys:", sorted(reg))
    print("settings fs:", settings.get("fs"), "tau:", settings.get("tau"))
    print("settings changed from defaults:", nested_diff(settings, suite2p.default_settings()))
    sh = truth["shifts"]
    ints = truth["integer_frames"]
    for j, key in enumerate(["yoff", "xoff"]):
        off = np.asarray(reg[key], float)
        r = np.corrcoef(off, sh[:, j])[0, 1]
        const = np.round(np.median(off[ints] - sh[ints, j]))  # suite2p's reference is offset by a whole px
        err = off - const - sh[:, j]
        print(f"{key}: dtype {np.asarray(reg[key]).dtype}, r vs injected {'dy' if j == 0 else 'dx'} = {r:+.4f}, "
              f"constant {const:+.0f} px, max|err| {np.abs(err).max():.3f} px (integer frames "
              f"{np.abs(err[ints]).max():.3f}, subpixel frames vs round(shift) "
              f"{np.abs(off - const - np.round(sh[:, j]))[~ints].max():.0f}), rms {np.sqrt((err**2).mean()):.3f}")
    # match suite2p ROIs to true footprints by mask overlap (fraction of the ROI's lam in a footprint)
    fp = sparse.csr_matrix((truth["footprints_data"], truth["footprints_indices"], truth["footprints_indptr"]),
                           shape=tuple(truth["footprints_shape"])).toarray() > 0.2
    best, frac = np.zeros(len(stat), int), np.zeros(len(stat))
    for i, s in enumerate(stat):
        lin = s["ypix"] * LX + s["xpix"]
        ov = (fp[:, lin] * s["lam"]).sum(1) / s["lam"].sum()
        best[i], frac[i] = ov.argmax(), ov.max()
    hit = frac > 0.5
    kind = truth["kind"]
    cell = iscell[:, 0] > 0
    print(f"ROIs with >50 % of their weight on one true footprint: {hit.sum()} / {len(stat)}; "
          f"true somas found {len(set(best[hit & (kind[best] == 0)]))} / {(kind == 0).sum()}, "
          f"processes found {len(set(best[hit & (kind[best] == 1)]))} / {(kind == 1).sum()}")
    print(f"  iscell among soma matches {int(cell[hit & (kind[best] == 0)].sum())}/{int((hit & (kind[best] == 0)).sum())}, "
          f"process matches {int(cell[hit & (kind[best] == 1)].sum())}/{int((hit & (kind[best] == 1)).sum())}, "
          f"unmatched {int(cell[~hit].sum())}/{int((~hit).sum())}")
    rs = [np.corrcoef(F[i], truth["traces"][:, best[i]])[0, 1] for i in np.flatnonzero(hit)]
    print(f"median r(suite2p F, true trace) over matched ROIs: {np.median(rs):.3f}")
    nwb = out / "suite2p" / "ophys.nwb"
    if nwb.exists():
        from pynwb import NWBHDF5IO

        with NWBHDF5IO(str(nwb), "r") as io:
            f = io.read()
            oph = f.processing["ophys"]
            print("NWB acquisition:", list(f.acquisition), "ophys:", list(oph.data_interfaces))
            for name in ["Fluorescence", "Neuropil", "Deconvolved"]:
                rrs = oph[name]["plane0"]
                print(f"  {name}/plane0 shape {rrs.data.shape} rate {rrs.rate}")
            print("  imaging_rate", f.imaging_planes["ImagingPlane"].imaging_rate,
                  "ROIs", len(oph["ImageSegmentation"]["PlaneSegmentation"]))
    else:
        print("NO NWB FILE")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"fixture total {total / 1e6:.2f} MB")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = Path(__file__).resolve().parents[1]
    ap.add_argument("--out", type=Path, default=root / "tests" / "data" / "suite2p_sim")
    ap.add_argument("--work", type=Path, default=Path("/tmp/suite2p_sim_run"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import tifffile

    movie, truth = render(args.seed)
    if args.work.exists():
        shutil.rmtree(args.work)
    (args.work / "raw").mkdir(parents=True)
    raw_tif = args.work / "raw" / "movie.tif"
    tifffile.imwrite(raw_tif, movie, photometric="minisblack")
    s2p = run_suite2p(raw_tif, args.work)

    out = args.out
    (out / "suite2p" / "plane0").mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(out / "movie.tif", movie, photometric="minisblack", compression="lzma")
    assert np.array_equal(tifffile.imread(out / "movie.tif"), movie)
    np.savez_compressed(out / "ground_truth.npz", **truth)
    for name in KEEP:
        if (s2p / "plane0" / name).exists():
            shutil.copy2(s2p / "plane0" / name, out / "suite2p" / "plane0" / name)
    for name in ["ophys.nwb", "db.npy", "settings.npy"]:
        if (s2p / name).exists():
            shutil.copy2(s2p / name, out / "suite2p" / name)
    report(out, truth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
