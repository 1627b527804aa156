"""CalM vs POCO vs MLP vs copy on one multi-session dataset, same splits, both metrics.

Prints (and writes as JSON with --out, after every model, so a cut-short run keeps what
finished) per model: test prediction score (1 - MSE/MSE_copy), test Pearson r (per window and
unit over the horizon, mean over units, windows, sessions), seconds per 1,000 training steps
(optimiser steps only, and the whole run's wall time with validation and test), the validation
history, and for CalM the quantizer's test reconstruction (MSE, r), codebook use (share of
codes used, perplexity), its last token accuracy, and the test figures of the sampled-mean
decoding (CALM_SPEC.md §6: `n_samples` sampled rollouts averaged after detokenising, an
estimate of the expected forecast instead of the single greedy one).

    python benchmarks/calm_compare.py sample_data/cohort --steps 400 --out calm_cohort.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

from _common import machine_info, set_threads

MODELS = {  # model -> config overrides (budget-sized for a shared 2-core CPU)
    "calm": {"preset": "tiny"},
    "poco": {},
    "mlp": {},
    "copy": {},
}


def quantizer_report(model, data) -> dict[str, float]:
    """CalM's tokenizer on the test windows (context + horizon long, not overlapping):
    reconstruction MSE and r, codebook use, and the tokenizer's ceiling on forecasting: the
    score (1 - MSE/MSE_copy over the horizon, per session, then the mean) of decoding the true
    tokens of the whole window, which a transformer predicting every future token right would
    reach (the frozen quantizer bounds CalM's forecasts, CALM_SPEC.md §12)."""
    import torch

    from poco_core.models.calm.quantizer import pearson_rows
    from poco_core.training.sampling import gather_windows

    ctx, length = model.config.context, model.config.context + model.config.horizon
    k = model.config.codebook_size
    counts = torch.zeros(k)
    mses, rs, ceilings = [], [], []
    model.eval()
    with torch.no_grad():
        for sd in data.sessions:
            wins = sd.windows("test", length, stride=length)
            w = torch.from_numpy(gather_windows(wins, list(range(len(wins)))))
            y = w.transpose(1, 2).reshape(-1, length)
            z = model.nq.tokenize(y)
            y_hat = model.nq.decode_tokens(z)
            mses.append(float((y_hat - y).square().mean()))
            rs.append(float(pearson_rows(y_hat, y).mean()))
            copy_mse = (y[:, ctx:] - y[:, ctx - 1 : ctx]).square().mean()
            ceilings.append(float(1 - (y_hat[:, ctx:] - y[:, ctx:]).square().mean() / copy_mse))
            counts += torch.bincount(z.flatten(), minlength=k).float()
    share = counts[counts > 0] / counts.sum()
    return {"rec_mse": sum(mses) / len(mses), "rec_r": sum(rs) / len(rs),
            "codes_used": float((counts > 0).float().mean()), "perplexity": float(torch.exp(-(share * share.log()).sum())),
            "tokenizer_ceiling_score": sum(ceilings) / len(ceilings)}


def sampled_mean_test(model, data, samples: int, temperature: float, stride: int) -> dict[str, float]:
    """Test score and r of the trained CalM decoding the mean of `samples` sampled rollouts."""
    import torch

    from poco_core.training.validation import evaluate_windows, summarise

    model.config.temperature, model.config.n_samples = temperature, samples
    torch.manual_seed(0)
    try:
        _, mean = summarise(evaluate_windows(model, data, "test", stride=stride))
    finally:
        model.config.temperature, model.config.n_samples = 0.0, 1
    return {"score": mean["score"], "pearson": mean["pearson"]}


def run_model(data, name: str, args, overrides: dict) -> tuple[dict, object]:
    """Train `name`, streaming its validations; returns the result row and the run."""
    from poco_core.training.train import train

    run = train(data, name, steps=args.steps, device="cpu", batch_size=args.batch_size, lr=args.lr,
                val_every=args.val_every, max_val_windows=32, test_stride=args.test_stride, seed=0,
                model_config=overrides)
    t0 = last = time.perf_counter()
    step_s, prev, history, stats = 0.0, None, [], {}
    for ev in run.events():
        now = time.perf_counter()
        if ev["type"] == "step":
            if prev == "step":  # an optimiser step alone (no validation or checkpoint in between)
                step_s += now - last
            stats = {k: v for k, v in ev.items() if isinstance(v, (int, float))}
        elif ev["type"] == "validation":
            history.append({"step": ev["step"], "score": ev.get("val_score"), "pearson": ev.get("pearson"),
                            "elapsed_s": round(now - t0, 1)})
            print(f"  {name} val", json.dumps(history[-1]), flush=True)
        elif ev["type"] == "stage":
            print(f"  {name} stage {ev['stage']} at step {ev.get('step')}", flush=True)
        prev, last = ev["type"], now
    done = run.result
    wall = time.perf_counter() - t0
    steps = max(len(run.losses) - 1, 1)
    row = {"score": done["test"]["score"], "pearson": done["test"]["pearson"], "best_step": done["best_step"],
           "last_step": done["last_step"], "stop_reason": done["stop_reason"], "wall_s": round(wall, 1),
           "s_per_1000_steps": round(1000 * step_s / steps, 1) if name != "copy" else math.nan,
           "wall_s_per_1000_steps": round(1000 * wall / args.steps, 1) if name != "copy" else math.nan,
           "last_step_stats": stats, "validation": history, "checkpoint": str(run.best_checkpoint)}
    return row, run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", nargs="+", type=Path)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--test-stride", type=int, default=4, help="stride between test windows (the same for every model)")
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--calm-nq-steps", type=int, default=None, help="CalM quantizer steps (default: the preset's)")
    p.add_argument("--calm-samples", type=int, default=8, help="sampled rollouts for the sampled-mean test (0: skip)")
    p.add_argument("--calm-temperature", type=float, default=1.0)
    p.add_argument("--report", type=Path, default=None,
                   help="no training: print the quantizer report of this trained CalM checkpoint on DATA")
    p.add_argument("--report-samples", default="", help="with --report: also the sampled-mean test at these "
                   "numbers of rollouts, e.g. 1,32 (--calm-temperature, --test-stride)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    set_threads(1)
    from poco_core.cli.common import load_inputs
    from poco_core.data.preprocess import PreprocessConfig, prepare

    data = prepare(load_inputs(args.data), PreprocessConfig())
    print("sessions:", ", ".join(f"{sd.session} ({len(sd.unit_ids)} units)" for sd in data.sessions))
    if args.report:
        from poco_core.training.restore import load_model

        model = load_model(args.report)
        report = quantizer_report(model, data)
        for n in filter(None, args.report_samples.split(",")):
            t0 = time.perf_counter()
            report[f"sampled_mean_{n}"] = sampled_mean_test(model, data, int(n), args.calm_temperature, args.test_stride)
            report[f"sampled_mean_{n}"]["wall_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(report))
        return
    info = machine_info()
    print(json.dumps(info), flush=True)
    results = {}
    for name in args.models.split(","):
        overrides = dict(MODELS[name])
        if name == "calm" and args.calm_nq_steps is not None:
            overrides["nq_steps"] = args.calm_nq_steps
        row, run = run_model(data, name, args, overrides)
        if name == "calm":
            row.update(quantizer_report(run.model, data))
            if args.calm_samples:
                row["sampled_mean"] = sampled_mean_test(run.model, data, args.calm_samples, args.calm_temperature,
                                                        args.test_stride)
        row["load_avg_1m_after"] = round(os.getloadavg()[0], 1)
        results[name] = row
        print(name, json.dumps({k: v for k, v in row.items() if k != "validation"}), flush=True)
        if args.out:
            args.out.write_text(json.dumps({"data": [str(d) for d in args.data], "steps": args.steps, "lr": args.lr,
                                            "test_stride": args.test_stride, "batch_size": args.batch_size,
                                            "machine": info, "results": results}, indent=1))

if __name__ == "__main__":
    main()
