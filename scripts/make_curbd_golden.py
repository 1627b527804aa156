"""Make tests/data/curbd2020_golden.npz: outputs of the public CURBD reference trainer on tiny inputs.

Run once, offline, outside the package (the reference is GPL and is never vendored or imported by
poco_core): check out github.com/rajanlab/CURBD and point --reference at it.

    git clone https://github.com/rajanlab/CURBD /tmp/CURBD   # commit 6e45f07 was used
    MPLBACKEND=Agg OMP_NUM_THREADS=1 python scripts/make_curbd_golden.py --reference /tmp/CURBD

The reference module is imported inside ``main`` only (needs numpy and matplotlib). Each case seeds
numpy's global generator, then calls ``curbd.trainMultiRegionRNN`` on fixed activity (N x T) and
keeps its per-run pVars and chi2s and the final J. tests/test_curbd2020.py checks that
``CircuitConfig(compat="curbd2020")`` reproduces them.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
from pathlib import Path

import numpy as np

# name: (N, T, dtData, dtFactor, tauRNN, nRunTrain, nRunFree, seed); the second case's 10 steps of
# 0.01 s add up to less than 0.1 s, so the reference learns every 11 steps (spec section 7a)
CASES = {"smooth": (20, 50, 0.01, 5, 0.1, 2, 1, 0), "late_learning": (20, 50, 0.1, 10, 1.0, 2, 1, 1)}
G, P0, TAU_WN, AMP_WN = 1.5, 1.0, 0.1, 0.01


def activity(n: int, t: int, seed: int) -> np.ndarray:
    """Fixed smooth activity (N x T): sines of random phase and period plus a little noise."""
    rng = np.random.default_rng(100 + seed)
    time = np.arange(t)[None, :]
    period = rng.uniform(10, 40, (n, 1))
    return np.sin(2 * np.pi * time / period + rng.uniform(0, 2 * np.pi, (n, 1))) * rng.uniform(0.3, 1.0, (n, 1)) \
        + 0.05 * rng.standard_normal((n, t))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", type=Path, required=True, help="a checkout of github.com/rajanlab/CURBD")
    ap.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "tests" / "data" / "curbd2020_golden.npz")
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location("curbd", args.reference / "curbd.py")
    curbd = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(curbd)
    commit = subprocess.run(["git", "-C", str(args.reference), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    out: dict[str, np.ndarray] = {"source_commit": np.array(commit or "unknown"), "cases": np.array(list(CASES))}
    for name, (n, t, dt, f, tau, n_train, n_free, seed) in CASES.items():
        act = activity(n, t, seed)
        np.random.seed(seed)
        model = curbd.trainMultiRegionRNN(act, dtData=dt, dtFactor=f, g=G, tauRNN=tau, tauWN=TAU_WN, ampInWN=AMP_WN,
                                          nRunTrain=n_train, nRunFree=n_free, P0=P0, plotStatus=False, verbose=False)
        out.update({f"{name}/activity": act, f"{name}/params": np.array([n, t, dt, f, tau, n_train, n_free, seed, G, P0, TAU_WN, AMP_WN]),
                    f"{name}/pvars": np.array(model["pVars"]), f"{name}/chi2s": np.array(model["chi2s"]),
                    f"{name}/J": model["J"]})
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out} from rajanlab/CURBD {commit}")


if __name__ == "__main__":
    main()
