"""CalM rollout with and without the temporal key/value cache: seconds per forecast call.

Without the cache every generated token step reruns the dual-axis transformer over the whole
sequence (context + generated so far); with it each step runs the new step alone against the
cached keys/values. The forecasts are the same (tests/test_calm.py); this measures the cost.

    python benchmarks/calm_rollout_speed.py --out calm_rollout_speed.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import machine_info, set_threads

SIZES = {  # name -> model overrides
    "tiny": {"preset": "tiny"},
    "d128x4": {"preset": "tiny", "d_model": 128, "layers": 4, "heads": 4, "ff": 512},
}


def seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=100)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--context", type=int, default=48)
    p.add_argument("--horizons", default="16,64")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    set_threads(args.threads)
    import torch

    from poco_core.models import SessionSpec, build_model

    spec = SessionSpec("s", "ds", [f"u{i}" for i in range(args.units)])
    rows = []
    for name, overrides in SIZES.items():
        torch.manual_seed(0)
        model = build_model("calm", [spec], context=args.context, **overrides).eval()
        model.stage_step.fill_(model.config.nq_steps)
        x = torch.randn(args.batch, args.context, args.units)
        for horizon in map(int, args.horizons.split(",")):
            row = {"size": name, "horizon": horizon, "tokens": -(-horizon // model.config.window)}
            for cache in (True, False):
                row["cached_s" if cache else "uncached_s"] = seconds(
                    lambda: model.rollout(x, "s", horizon, cache=cache), args.repeats)
            row["speedup"] = row["uncached_s"] / row["cached_s"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    info = machine_info() | {"units": args.units, "batch": args.batch, "context": args.context}
    print(json.dumps(info))
    if args.out:
        args.out.write_text(json.dumps({"machine": info, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
