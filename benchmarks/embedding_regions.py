"""Do POCO's unit embeddings recover regions? Diagnosis for issue 16, section 3; prints JSON lines.

    python benchmarks/embedding_regions.py --data cohort --variants after,residual --out /tmp/emb.jsonl

Without ``--steps`` a run uses the training defaults (step budget, validation cadence, early stopping).

For each trained model: region-classifier accuracy of the unit embeddings as stored and of their
learned part (``learned_part``: less their initial draw, ``poco embed``'s default; for a model kept at
its MLP, the rows of its population stage, ``source``) against shuffled labels, the majority-region fraction (chance) and the same classifier
on each trace's own statistics (the ceiling); how far the embeddings moved from their
initialisation (relative Frobenius norm); and whether the forecasts use them (validation MSE with
the unit rows shuffled among the units of a session, or set to zero, vs intact).
Data: ``cohort`` = the shipped synthetic cohort (5 fish, 740 units, 4 regions, sigma_J 0.2; as
``make_sample_data``), ``triplett`` = the two Triplett fish (assembly labels).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import set_threads  # noqa: E402
from small_data import ENCODER, ONE_STAGE, SIZES, TRIPLETT  # noqa: E402

from poco_core.analysis.embedding import analyze_model  # noqa: E402
from poco_core.data.io import load_recording  # noqa: E402
from poco_core.data.preprocess import prepare  # noqa: E402
from poco_core.data.simulate import simulate_cohort  # noqa: E402
from poco_core.models import build_model  # noqa: E402
from poco_core.training.loop import seed_everything  # noqa: E402
from poco_core.training.restore import load_model  # noqa: E402
from poco_core.training.train import session_specs, train  # noqa: E402
from poco_core.training.validation import evaluate_windows, pooled_mse  # noqa: E402

VARIANTS = {"after": ({}, {}), "residual": ({"film": "residual"}, {}),  # loop options on top of ONE_STAGE
            "cond_lr10": ({}, {"cond_lr_scale": 10.0}),  # encoder, embeddings and FiLM maps at 10 x lr
            "emb_lr10": ({}, {"embedding_lr_scale": 10.0}),  # only the embeddings at 10 x lr
            "emb_lr3": ({}, {"embedding_lr_scale": 3.0}),
            "warmup_se1": ({}, {"mlp_warmup": True, "mlp_warmup_se": 1.0}),
            "warmup_se1_emb10": ({}, {"mlp_warmup": True, "mlp_warmup_se": 1.0, "embedding_lr_scale": 10.0})}


def recordings(name: str):
    if name == "cohort":
        return simulate_cohort(5, [150, 120, 170, 140, 160], 1500, sigma_j=0.2, seed=1, dataset="synthetic-cohort")
    return [load_recording(p) for p in TRIPLETT]


def used(model, data) -> dict:
    """Validation MSE intact, with each session's unit rows permuted, and with them zeroed."""
    def val() -> float:
        return pooled_mse(evaluate_windows(model, data, "val", batch_size=256, max_windows=128, device="cpu"))

    out = {"val_mse": val()}
    table = model.embeddings.unit
    saved = {k: p.detach().clone() for k, p in table.items()}
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for k, p in table.items():
            p.copy_(saved[k][torch.randperm(len(p), generator=g)])
        out["val_mse_units_permuted"] = val()
        for p in table.values():
            p.zero_()
        out["val_mse_units_zeroed"] = val()
        for k, p in table.items():
            p.copy_(saved[k])
    return out


def initial_embeddings(data, cfg: dict, seed: int):
    """The model as training starts from ``seed`` and a copy of its unit embeddings."""
    seed_everything(seed)
    init = build_model("poco", session_specs(data), **cfg)
    return init, {k: p.detach().clone() for k, p in init.embeddings.unit.items()}


def measure(model, e0: dict, recs, data) -> dict:
    """Embedding movement from ``e0``, the forecasts' use of the unit rows, region recovery."""
    moved = float(torch.sqrt(sum(((model.embeddings.unit[k].detach() - e0[k]) ** 2).sum() for k in e0)
                             / sum((e0[k] ** 2).sum() for k in e0)))
    stored = analyze_model(model, recs, learned=False)
    learned = analyze_model(model, recs)  # `poco embed`'s default: the rows less their initial draw
    return {"embedding_moved_rel": moved, **used(model, data), **(stored.recovery or {}), "source": learned.source,
            "learned_part": {k: (learned.recovery or {}).get(k) for k in ("accuracy", "accuracy_shuffled", "within_session")}}


def run(data_name: str, variant: str, steps: int | None, seed: int, keep: Path | None = None) -> dict:
    recs = recordings(data_name)
    data = prepare(recs)
    model_cfg, loop = VARIANTS[variant]
    loop = {**ONE_STAGE, **loop}
    init, e0 = initial_embeddings(data, {**SIZES["poco"], **model_cfg}, seed)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        r = train(data, init, steps=steps, seed=seed, device="cpu", checkpoint=Path(tmp) / "m.pt", **loop)
        done = r.wait()
        wall = time.perf_counter() - t0
        measured = measure(r.model, e0, recs, data)  # r.model reads the checkpoint in tmp
        if keep is not None:  # for `poco embed` on it
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(tmp) / "m.pt", keep)
    return {"data": data_name, "variant": variant, "steps": steps, "seed": seed, "best_step": done["best_step"],
            "last_step": done.get("last_step"), "test_score": done["test"].get("score"), "wall_s": round(wall, 1),
            **measured}


def run_checkpoint(data_name: str, path: Path, seed: int) -> dict:
    """The same measurements on a checkpoint written by a run of this script (e.g. one still
    training: the best so far), its initial embeddings rebuilt from ``seed``."""
    recs = recordings(data_name)
    data = prepare(recs)
    model = load_model(path)
    cfg = {k: getattr(model.config, k) for k in ("hidden", "film", *ENCODER)}
    _, e0 = initial_embeddings(data, cfg, seed)
    payload = torch.load(path, weights_only=True, map_location="cpu")
    return {"data": data_name, "checkpoint": str(path), "seed": seed, "best_step": payload["step"],
            "cond_lr_scale": payload["loop"].get("cond_lr_scale"), **measure(model, e0, recs, data)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="cohort")
    p.add_argument("--variants", default="after")
    p.add_argument("--steps", type=int, default=None, help="step budget (default: the training defaults)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("embedding_regions.jsonl"))
    p.add_argument("--checkpoint", type=Path, default=None, help="measure this checkpoint of --data instead of training")
    p.add_argument("--keep", type=Path, default=None, help="copy the trained checkpoint here (one --data and --variants)")
    args = p.parse_args()
    set_threads(1)
    if args.checkpoint:
        r = run_checkpoint(args.data, args.checkpoint, args.seed)
        print(json.dumps(r), flush=True)
        with args.out.open("a") as f:
            f.write(json.dumps(r) + "\n")
        return
    for data_name in args.data.split(","):
        for variant in args.variants.split(","):
            r = run(data_name, variant, args.steps, args.seed, args.keep)
            print(json.dumps(r), flush=True)
            with args.out.open("a") as f:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
