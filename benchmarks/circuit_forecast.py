"""The curbd forecaster against copy-last on a noisy three-region network (spec section 9).

Fits one J per session by RLS on the training blocks (P0 and runs chosen on validation), then
evaluates the test windows with the project's evaluator; prints MSE / copy MSE (expected > 1:
the fitted circuit forecasts worse than repeating the last frame).
Run: OMP_NUM_THREADS=1 python benchmarks/circuit_forecast.py [--n-per-region 20] [--frames 3000] [--noise 0.1] [--horizon 16]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from poco_core.analysis.evaluate import evaluate
from poco_core.data.circuit_sim import simulate_three_regions
from poco_core.data.preprocess import PreprocessConfig, prepare
from poco_core.models import build_model
from poco_core.models.base import SessionSpec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-per-region", type=int, default=20)
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--context", type=int, default=48)
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--max-runs", type=int, default=10)
    ap.add_argument("--noise", type=float, default=0.1, help="state noise of the generating network")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rec = simulate_three_regions(args.n_per_region, args.frames, amp_in=1.0, state_noise=args.noise, seed=0).recording()
    data = prepare([rec], PreprocessConfig(block_len=500))
    sd = data.sessions[0]
    model = build_model("curbd", [SessionSpec(sd.session, sd.dataset, sd.unit_ids)], context=args.context,
                        horizon=args.horizon, max_runs=args.max_runs)
    t0 = time.perf_counter()
    chosen = next(e for e in model.fit_session(sd) if e["type"] == "stage" and e["stage"] == "selected")
    fit_s = time.perf_counter() - t0
    result = evaluate(model, data, "test")
    row = {r["model"]: r for r in result.rows() if r["session"] == "(mean)"}
    print(json.dumps({"n": sd.values.shape[1], "frames": args.frames, "context": args.context, "horizon": args.horizon,
                      "chosen_p0": chosen["p0"], "chosen_runs": chosen["runs"], "val_score": round(chosen["val_score"], 3),
                      "fit_s": round(fit_s, 1), "noise": args.noise, "mse": row["curbd"]["mse"], "copy_mse": row["copy"]["mse"],
                      "mse_over_copy": round(row["curbd"]["mse"] / row["copy"]["mse"], 2)}))


if __name__ == "__main__":
    main()
