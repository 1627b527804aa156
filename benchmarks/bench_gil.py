"""A forecast's wall time alone and beside a busy Python thread (the Live dock's GUI thread), for
the eager forward pass and for the TorchScript trace that ``predict`` runs once a call repeats
(``poco_core.models.traced``). An eager POCO forward retakes the GIL for each of its few hundred
ops, so another Python thread stretches it many times over; the trace holds the GIL only to start.

    python benchmarks/bench_gil.py --units 1000 --threads 1
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

import torch

from _common import set_threads


def timed(fn, runs: int) -> dict[str, float]:
    wall, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        wall.append(1e3 * (time.perf_counter() - t0))
        cpu.append(1e3 * (time.thread_time() - c0))
    wall.sort()
    return {"wall_median_ms": statistics.median(wall), "wall_p95_ms": wall[int(0.95 * (len(wall) - 1))],
            "cpu_median_ms": statistics.median(cpu)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the Live dock's benchmarks)")
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--switch-interval-ms", type=float, default=0.5, help="the Live dock's while connected")
    a = ap.parse_args()
    set_threads(a.threads)
    sys.setswitchinterval(a.switch_interval_ms / 1000)
    from poco_core.models import SessionSpec, build_model
    from poco_core.models.inference import inference_copy, native_bf16, predict
    from poco_core.models.traced import TRACE_AFTER

    torch.manual_seed(0)
    model = build_model("poco", [SessionSpec("b", "b", [f"u{i}" for i in range(a.units)])]).eval()
    x = [torch.randn(1, model.config.context, a.units)]
    precisions = ("fp32", "bf16") if native_bf16(torch.device("cpu")) else ("fp32",)
    calls = {}
    for p in precisions:
        for _ in range(TRACE_AFTER + 3):  # the trace is made and primed
            predict(model, x, ["b"], p)
        net = inference_copy(model, {"fp32": torch.float32, "bf16": torch.bfloat16}[p])
        xp = [x[0].to(next(net.parameters()).dtype)]

        def eager(net=net, xp=xp):
            with torch.inference_mode():
                net(xp, ["b"])

        calls[f"{p} eager"] = eager
        calls[f"{p} traced"] = lambda p=p: predict(model, x, ["b"], p)
    stop = threading.Event()

    def spin() -> None:  # a GUI thread that always has Python to run
        while not stop.is_set():
            pass

    rows = {("alone", k): timed(fn, a.runs) for k, fn in calls.items()}
    busy = threading.Thread(target=spin, daemon=True)
    busy.start()
    rows.update({("beside a busy Python thread", k): timed(fn, a.runs) for k, fn in calls.items()})
    stop.set()
    busy.join()
    print(f"POCO (spec defaults), {a.units} units, batch 1, {a.threads} torch thread(s), switch interval "
          f"{a.switch_interval_ms} ms")
    print("| pass | alone: wall median / p95 (ms) | beside a busy Python thread: wall median / p95 (ms), CPU |")
    print("|---|---|---|")
    for k in calls:
        al, bu = rows[("alone", k)], rows[("beside a busy Python thread", k)]
        print(f"| {k} | {al['wall_median_ms']:.1f} / {al['wall_p95_ms']:.1f} | "
              f"{bu['wall_median_ms']:.1f} / {bu['wall_p95_ms']:.1f}, {bu['cpu_median_ms']:.1f} |")


if __name__ == "__main__":
    main()
