"""Can blocked K-fold cross-validation tell POCO from its own MLP where one validation split cannot?

    python benchmarks/crossval_choice.py --datasets fissa,triplett_full --seeds 0,1,2 --out /tmp/cv.jsonl
    python benchmarks/crossval_choice.py --render /tmp/cv.jsonl      # Markdown tables of the cache

Why: issue 16. With the paper's split (each 1,000-frame block 3:1:1 train / val / test in time
order) the validation MSE picks the wrong model on fissa (POCO lower on validation, worse on test)
and cannot see POCO's gain on triplett_full, so every rule made on it gives up one goal or the other.
Here each block's train + val part is cut into K equal parts; fold k validates on part k and trains
on the others; the test part is never touched, and fold K - 1 is exactly the default split. POCO
(one stage, the reference's procedure) and its MLP (the `mlp` model of the same hidden size, the
function of POCO's warmed-up MLP) train on every fold with the same seed; the candidate with the
lower mean best validation MSE over the folds is the choice, and its fold-(K - 1) run is the model
it would return. Datasets, model sizes and budget as `small_data.py` (10,000 steps, early stopping),
plus ``cohort``, the synthetic cohort of `embedding_regions.py` (5 fish, 740 units, 4 regions).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, md_table, read_jsonl, set_threads  # noqa: E402
from embedding_regions import recordings  # noqa: E402
from small_data import ONE_STAGE, SIZES, dataset  # noqa: E402

from poco_core.data.preprocess import PreparedData, PreprocessConfig, prepare  # noqa: E402
from poco_core.data.windows import Ranges  # noqa: E402
from poco_core.training.train import train  # noqa: E402

CANDIDATES = ("mlp", "poco")


def fold_ranges(ranges: dict[str, Ranges], k: int, folds: int) -> dict[str, Ranges]:
    """Fold ``k`` of ``folds``: per block, part k of the train + val frames validates, the rest trains."""
    train_r, val_r = [], []
    for (a, _), (_, t) in zip(ranges["train"], ranges["val"]):
        e = [a + (t - a) * j // folds for j in range(folds + 1)]
        val_r.append((e[k], e[k + 1]))
        train_r += [r for r in ((a, e[k]), (e[k + 1], t)) if r[1] > r[0]]
    return {"train": train_r, "val": val_r, "test": ranges["test"]}


def fold_data(data: PreparedData, k: int, folds: int) -> PreparedData:
    if k == folds - 1:
        return data  # the default split
    return dataclasses.replace(data, sessions=[dataclasses.replace(s, ranges=fold_ranges(s.ranges, k, folds))
                                               for s in data.sessions])


def run_fold(ds: str, data: PreparedData, model: str, seed: int, k: int, folds: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = train(fold_data(data, k, folds), model, steps=steps, seed=seed, device="cpu",
                    checkpoint=Path(tmp) / "m.pt", model_config=SIZES[model], **ONE_STAGE)
        done = run.wait()
    return {"dataset": ds, "seed": seed, "fold": k, "folds": folds, "model": model, "best_val_mse": done["best_val_mse"],
            "best_step": done["best_step"], "test_score": done["test"].get("score"), "test_mse": done["test"].get("mse"),
            "wall_s": round(time.perf_counter() - t0, 1)}


def render(path: Path) -> str:
    rows = read_jsonl(path)
    runs: dict[tuple, dict] = {}
    for r in rows:
        runs.setdefault((r["dataset"], r["seed"], r["folds"]), {}).setdefault(r["model"], {})[r["fold"]] = r
    per_seed, chosen = [], {}
    for (ds, seed, folds), by in sorted(runs.items()):
        if any(len(by.get(m, {})) < folds for m in CANDIDATES):
            continue  # unfinished
        cv = {m: statistics.mean(by[m][f]["best_val_mse"] for f in range(folds)) for m in CANDIDATES}
        pick = min(CANDIDATES, key=cv.get)
        test = {m: by[m][folds - 1]["test_score"] for m in CANDIDATES}
        diffs = [by["poco"][f]["best_val_mse"] - by["mlp"][f]["best_val_mse"] for f in range(folds)]
        wall = sum(by[m][f]["wall_s"] for m in CANDIDATES for f in range(folds))
        per_seed.append([ds, seed, f"{cv['mlp']:.4f}", f"{cv['poco']:.4f}", " / ".join(f"{d:+.4f}" for d in diffs),
                         pick, f"{test['mlp']:.3f}", f"{test['poco']:.3f}", f"{test[pick]:.3f}", f"{wall:.0f}"])
        chosen.setdefault(ds, []).append((test["mlp"], test["poco"], test[pick]))
    summary = [[ds, len(v), *(f"{statistics.mean(x[i] for x in v):.3f}" for i in range(3)),
                f"{statistics.mean(x[2] - x[0] for x in v):+.3f}"] for ds, v in chosen.items()]
    return (md_table(["dataset", "seed", "CV val MSE, MLP", "CV val MSE, POCO", "POCO - MLP per fold", "choice",
                      "test MLP", "test POCO", "test of the choice", "wall s (all folds)"], per_seed) + "\n\n"
            + md_table(["dataset", "seeds", "MLP", "POCO (one stage)", "cross-validated choice", "choice - MLP"], summary))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="fissa,triplett_full,drift,triplett_short")
    p.add_argument("--seeds", default="0")
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--max-steps", type=int, default=10000)
    p.add_argument("--out", type=Path, default=Path("crossval_choice.jsonl"))
    p.add_argument("--render", type=Path, default=None, help="print the tables of this JSONL cache and exit")
    args = p.parse_args()
    if args.render:
        print(render(args.render))
        return
    set_threads(1)
    done = {(r["dataset"], r["seed"], r["fold"], r["folds"], r["model"]) for r in read_jsonl(args.out)}
    for ds in args.datasets.split(","):
        recs, prep = (recordings(ds), PreprocessConfig()) if ds == "cohort" else dataset(ds)
        data = prepare(recs, prep)
        for seed in map(int, args.seeds.split(",")):
            for k in range(args.folds):
                for model in CANDIDATES:
                    if (ds, seed, k, args.folds, model) in done:
                        continue
                    r = run_fold(ds, data, model, seed, k, args.folds, args.max_steps)
                    append_jsonl(args.out, r)


if __name__ == "__main__":
    main()
