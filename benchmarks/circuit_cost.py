"""Time and memory of one circuit-fit run versus N on this CPU (one BLAS thread, fp64).

Each N runs in a fresh process: seconds per training run and per free run (T frames, f sub-steps),
the RLS update's share, the peak resident memory and poco_core's estimate (estimate_cost). Timings
on a shared 2-core machine are noisy: compare within one run of this script.
Run: OMP_NUM_THREADS=1 python benchmarks/circuit_cost.py [--n 100 250 500 1000 1500] [--frames 200] [--f 1]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time


def one(n: int, frames: int, f: int, p: float, runs: int, queue) -> None:
    import numpy as np
    import torch

    from poco_core.models.circuit_rnn import CircuitConfig, estimate_cost, fit_rnn

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    d = np.clip(np.cumsum(rng.standard_normal((frames, n)), axis=0) / np.sqrt(frames) * 0.5, -0.999, 0.999)
    cfg = CircuitConfig(plastic_fraction=p, n_train=runs, free_every=10**9, dt_factor=f, tau_s=0.1 * f)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    steps = []
    gen = fit_rnn(d, 0.1, cfg)
    try:
        while True:
            next(gen)
            steps.append(time.perf_counter())
    except StopIteration:
        pass
    total = time.perf_counter() - t0
    train = (steps[runs - 1] - t0) / runs
    free = total - (steps[runs - 1] - t0)
    est = estimate_cost(n, frames, 0.1, cfg)
    queue.put({"n": n, "p": p, "frames": frames, "f": f, "s_per_train_run": round(train, 3), "s_per_free_run": round(free, 3),
               "update_share": round(max(train - free, 0) / train, 2), "est_s_per_run": round(est["seconds_per_run"], 3),
               "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
               "rss_over_import_mib": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024, 0),
               "est_mib": round(est["bytes"] / 2**20, 1)})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[100, 250, 500, 1000, 1500])
    ap.add_argument("--p", type=float, nargs="+", default=[1.0, 0.1])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--f", type=int, default=1)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    for n in args.n:
        for p in args.p:
            q = ctx.Queue()
            proc = ctx.Process(target=one, args=(n, args.frames, args.f, p, args.runs, q))
            proc.start()
            print(json.dumps(q.get()), flush=True)
            proc.join()


if __name__ == "__main__":
    main()
