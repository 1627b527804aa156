"""CalM vs POCO vs MLP vs copy on one multi-session dataset, same splits, both metrics.

Prints (and writes as JSON with --out) per model: test prediction score (1 - MSE/MSE_copy),
test Pearson r (per window and unit over the horizon, mean over units, windows, sessions),
wall seconds per 1,000 training steps (validation included), and for CalM the quantizer's
test reconstruction (MSE, r) and codebook use (share of codes used, perplexity).

    python benchmarks/calm_compare.py sample_data/cohort --steps 400 --out calm_cohort.json
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from _common import set_threads

MODELS = {  # model -> config overrides (budget-sized for a shared 2-core CPU)
    "calm": {"preset": "tiny"},
    "poco": {},
    "mlp": {},
    "copy": {},
}


def quantizer_report(model, data) -> dict[str, float]:
    """CalM's tokenizer on the test windows: reconstruction MSE and r, codebook use."""
    import torch

    from poco_core.models.calm.quantizer import pearson_rows
    from poco_core.training.sampling import gather_windows

    length = model.config.context + model.config.horizon
    k = model.config.codebook_size
    counts = torch.zeros(k)
    mses, rs = [], []
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
            counts += torch.bincount(z.flatten(), minlength=k).float()
    share = counts[counts > 0] / counts.sum()
    return {"rec_mse": sum(mses) / len(mses), "rec_r": sum(rs) / len(rs),
            "codes_used": float((counts > 0).float().mean()), "perplexity": float(torch.exp(-(share * share.log()).sum()))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", nargs="+", type=Path)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--test-stride", type=int, default=4, help="stride between test windows (the same for every model)")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    set_threads(1)
    from poco_core.cli.common import load_inputs
    from poco_core.data.preprocess import PreprocessConfig, prepare
    from poco_core.training.train import train

    data = prepare(load_inputs(args.data), PreprocessConfig())
    print("sessions:", ", ".join(f"{sd.session} ({len(sd.unit_ids)} units)" for sd in data.sessions))
    results = {}
    for name in args.models.split(","):
        t0 = time.perf_counter()
        run = train(data, name, steps=args.steps, device="cpu", batch_size=args.batch_size, lr=args.lr, val_every=100,
                    max_val_windows=32, test_stride=args.test_stride, seed=0, model_config=MODELS[name])
        done = run.wait()
        wall = time.perf_counter() - t0
        row = {"score": done["test"]["score"], "pearson": done["test"]["pearson"], "best_step": done["best_step"],
               "wall_s": wall, "s_per_1000_steps": 1000 * wall / args.steps if name != "copy" else math.nan}
        if name == "calm":
            row.update(quantizer_report(run.model, data))
        results[name] = row
        print(name, json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"data": [str(d) for d in args.data], "steps": args.steps, "lr": args.lr,
                                        "test_stride": args.test_stride, "batch_size": args.batch_size, "results": results}, indent=1))


if __name__ == "__main__":
    main()
