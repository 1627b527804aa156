"""PINning's p-dependence on the sequence-bump target (spec section 13, test 8).

Fast variant (N = 200, tau = 40 ms, f = 16) by default; ``--pset3`` uses the demo's scale (N = 500,
tau = 10 ms, dt 1 ms, 120 runs: minutes per p). Prints free-run pVar per plastic fraction p.
Run: OMP_NUM_THREADS=1 python benchmarks/circuit_pinning.py [--runs 40] [--p 0.05 0.1 0.2 0.5 1]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from poco_core.analysis.circuit import DataPrep, fit_circuit
from poco_core.data.circuit_sim import sequence_bump


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--p", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.5, 1.0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--pset3", action="store_true", help="the demo's scale: N 500, tau 10 ms, f 64")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    n, tau, f = (500, 0.01, 64) if args.pset3 else (args.n, 0.04, 16)
    rec = sequence_bump(n)
    for p in args.p:
        t0 = time.perf_counter()
        fit = fit_circuit(rec, p, n_train=args.runs, tau_s=tau, dt_factor=f, phi="logistic", target="currents",
                          amp_in=1.0, tau_wn=1.0, free_every=10**9, seed=args.seed, prep=DataPrep(standardize="none"))
        print(json.dumps({"p": p, "n": n, "runs": args.runs, "pvar_free": round(fit.pvar_free, 4),
                          "pvar_online_last": round(fit.pvar_online[-1], 4), "learned_change": round(fit.learned_change(), 2),
                          "seconds": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
