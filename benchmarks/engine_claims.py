"""The engine issue's "done when" experiments, on a short CPU budget.

1. ordering: POCO > MLP > NLinear > copy (score 0) on the sample cohort (fish01-04, multi-session);
2. multi- vs single-session POCO on a cohort of similar individuals (sigma_J 0.05, 8 fish x 500 frames:
   the paper's regime, little data per animal);
3. finetuning the cohort model to the held-out fish05 for 50 steps vs training from scratch for 50.

    python benchmarks/engine_claims.py [--steps 400] [--out claims.json]

Models are smaller than the paper's (hidden 256, d_model 64, 4 self-attention heads) and use
lr 1e-3 so a few hundred CPU steps show the ordering; all models get the same steps and lr.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from poco_core.data.preprocess import PreprocessConfig, prepare
from poco_core.data.simulate import simulate_cohort
from poco_core.training.finetune import finetune
from poco_core.training.train import train

SMALL_POCO = dict(hidden=256, d_model=64, self_attn_heads=4)
CONFIGS = {"poco": SMALL_POCO, "mlp": dict(hidden=256), "nlinear": {}, "copy": {}}


def fit(data, model: str, steps: int, folder: Path, **kw):
    run = train(data, model, steps=steps, checkpoint=folder / f"{model}-{time.monotonic_ns()}.pt", device="cpu",
                val_every=max(steps // 4, 1), max_val_windows=256, batch_size=32, lr=1e-3, **{**CONFIGS[model], **kw})
    done = run.wait()
    return run, done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--finetune-steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--multi-steps", type=int, default=None,
                    help="steps for the multi-session model (default: --steps x sessions, so every session "
                         "gets as many batches as its single-session model)")
    ap.add_argument("--similar", default="8x500", help="similar-cohort size for the multi-session claim: SESSIONSxFRAMES")
    ap.add_argument("--parts", default="ordering,finetune,multi", help="which experiments to run")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results: dict = {"steps": args.steps}
    config = PreprocessConfig()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # the sample cohort of poco_core.data.simulate.make_sample_data: fish05 is held out
        cohort = simulate_cohort(5, [150, 120, 170, 140, 160], 1500, sigma_j=0.2, seed=1, dataset="synthetic-cohort")
        data = prepare(cohort[:4], config)
        parts = set(args.parts.split(","))
        scores, poco_run = {}, None
        for name in ("copy", "nlinear", "mlp", "poco") if parts & {"ordering", "finetune"} else ():
            t0 = time.perf_counter()
            run, done = fit(data, name, args.steps, folder)
            scores[name] = {"test_score": done["test"]["score"], "test_mse": done["test"]["mse"],
                            "seconds": round(time.perf_counter() - t0, 1)}
            print(name, scores[name], flush=True)
            poco_run = run if name == "poco" else poco_run
        if scores:
            results["ordering"] = scores

        if "finetune" in parts:
            finetune_vs_scratch(poco_run, cohort[4:], config, folder, args.finetune_steps, results)
        if "multi" in parts:
            n_sessions, n_frames = (int(v) for v in args.similar.split("x"))
            multi_vs_single(config, folder, args.steps, args.multi_steps, results, n_sessions, n_frames)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


def finetune_vs_scratch(poco_run, recs, config, folder: Path, steps: int, results: dict) -> None:
    """Finetune the cohort POCO to the held-out fish vs POCO from scratch on it, same steps."""
    held_out = prepare(recs, config)
    ft = finetune(poco_run.best_checkpoint, held_out, steps=steps, val_every=10, lr=1e-2,
                  batch_size=32, max_val_windows=256, device="cpu", checkpoint=folder / "ft.pt").wait()
    _, scratch = fit(held_out, "poco", steps, folder)
    results["finetune"] = {"finetuned_embeddings_only": ft["test"]["score"], "scratch": scratch["test"]["score"],
                           "steps": steps}
    print("finetune", results["finetune"], flush=True)


def multi_vs_single(config, folder: Path, steps: int, multi_steps: int | None, results: dict,
                    n_sessions: int = 4, n_frames: int = 1000) -> None:
    """Multi- vs single-session POCO on similar individuals (sigma_J 0.05) with little data each."""
    similar = simulate_cohort(n_sessions, 100, n_frames, sigma_j=0.05, seed=2, dataset="similar")
    multi_steps = multi_steps or steps * len(similar)
    _, multi_done = fit(prepare(similar, config), "poco", multi_steps, folder)
    per_multi = multi_done["metrics"]["test"]["sessions"]
    single = {}
    for rec in similar:
        _, done = fit(prepare([rec], config), "poco", steps, folder)
        single[rec.session] = done["test"]["score"]
    results["multi_vs_single"] = {
        "multi_mean": sum(m["score"] for m in per_multi.values()) / len(per_multi),
        "single_mean": sum(single.values()) / len(single),
        "per_session": {s: {"multi": per_multi[s]["score"], "single": single[s]} for s in single},
        "steps": {"multi": multi_steps, "single": steps},
    }
    print("multi_vs_single", results["multi_vs_single"], flush=True)


if __name__ == "__main__":
    main()
