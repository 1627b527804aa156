"""Can blocked K-fold cross-validation tell POCO from its own MLP where one validation split cannot?

    python benchmarks/crossval_choice.py --datasets fissa,triplett_full --seeds 0,1,2 --out /tmp/cv.jsonl
    python benchmarks/crossval_choice.py --render /tmp/cv.jsonl      # Markdown tables of the cache

Why: issue 16. With the paper's split (each 1,000-frame block 3:1:1 train / val / test in time
order) the validation MSE picks the wrong model on fissa (POCO lower on validation, worse on test)
and cannot see POCO's gain on triplett_full, so every rule made on it gives up one goal or the other.
This runs the engine's cross-validated choice (`poco train --cv-folds K`, poco_core/training/crossval.py):
each block's train + val part cut into K parts, fold k validating on part k, the test part never
touched, fold K - 1 the default split; POCO's MLP alone and POCO in one stage train on every fold with
the same seed and the lower mean best validation MSE wins. One row per run (fold x candidate) with its
test score, so the table can say whether the choice was the model better on test. Datasets, model
sizes and budget as `small_data.py` (10,000 steps, early stopping), plus ``cohort``, the synthetic
cohort of `embedding_regions.py` (5 fish, 740 units, 4 regions).
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, md_table, read_jsonl, runs_parser, set_threads  # noqa: E402
from embedding_regions import recordings  # noqa: E402
from small_data import ONE_STAGE, SIZES, dataset  # noqa: E402

from poco_core.data.preprocess import PreparedData, PreprocessConfig, prepare  # noqa: E402
from poco_core.training.crossval import CANDIDATES, choose, crossval_events  # noqa: E402
from poco_core.training.defaults import CV_DECISIVE_SE  # noqa: E402


def run_cv(ds: str, data: PreparedData, seed: int, folds: int, steps: int, split_only: bool = False) -> list[dict]:
    """One cross-validated choice: a row per run, and the choice's test score on every row. With
    `split_only` the default split's two runs alone (any difference settles it), for their paired z."""
    rows, t = [], time.perf_counter()
    loop = {k: v for k, v in ONE_STAGE.items() if k != "mlp_warmup"}
    with tempfile.TemporaryDirectory() as tmp:
        # every fold, so the table can say what the folds show; the done event says how far apart the default
        # split's two runs are (`default_split`), so the table can say what the engine's settling rule does
        for ev in crossval_events(data, "poco", folds=folds, checkpoint=Path(tmp) / "m.pt", steps=steps, seed=seed,
                                  device="cpu", model_config=SIZES["poco"], decisive_se=0.0 if split_only else None,
                                  **loop):
            if ev["type"] == "crossval_run":
                now = time.perf_counter()
                rows.append({"dataset": ds, "seed": seed, "fold": ev["fold"], "folds": folds, "model": ev["candidate"],
                             "split_only": split_only,
                             "best_val_mse": ev["best_val_mse"], "best_step": ev["best_step"],
                             "test_score": ev["test"].get("score"), "test_mse": ev["test"].get("mse"),
                             "wall_s": round(now - t, 1)})
                t = now
            elif ev["type"] == "done":
                split = ev["crossval"]["default_split"]
                for r in rows:
                    r["choice"], r["choice_test_score"] = ev["crossval"]["choice"], ev["test"].get("score")
                    r["default_split_z"] = split["gain"] / split["se"]
    return rows


def render(path: Path) -> str:
    rows = read_jsonl(path)
    runs: dict[tuple, dict] = {}
    for r in rows:
        if not r.get("split_only"):
            runs.setdefault((r["dataset"], r["seed"], r["folds"]), {}).setdefault(r["model"], {})[r["fold"]] = r
    per_seed, chosen = [], {}
    for (ds, seed, folds), by in sorted(runs.items()):
        if any(len(by.get(m, {})) < folds for m in CANDIDATES):
            continue  # unfinished
        pick, cv, _ = choose({m: {f: by[m][f]["best_val_mse"] for f in range(folds)} for m in CANDIDATES})
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
            + md_table(["dataset", "seeds", "MLP", "POCO (one stage)", "cross-validated choice", "choice - MLP"], summary)
            + "\n\n" + settling(rows, runs))


def settling(rows: list[dict], runs: dict[tuple, dict]) -> str:
    """What the engine's rule (`CV_DECISIVE_SE`) does with each default split: settle, or run every fold."""
    out, seen = [], set()
    for r in rows:
        key = (r["dataset"], r["seed"], r["folds"])
        if "default_split_z" not in r or key in seen:
            continue
        seen.add(key)
        z = r["default_split_z"]
        settled = abs(z) > CV_DECISIVE_SE
        full = runs.get(key)
        cv = choose({m: {f: full[m][f]["best_val_mse"] for f in range(r["folds"])} for m in CANDIDATES})[0] \
            if full and all(len(full.get(m, {})) == r["folds"] for m in CANDIDATES) else None
        pick = ("poco" if z > 0 else "mlp") if settled else cv
        out.append([r["dataset"], r["seed"], f"{z:+.2f}", f"settles: {pick}" if settled else "every fold",
                    cv or "-", "-" if cv is None or pick is None else ("yes" if pick == cv else "no")])
    return md_table(["dataset", "seed", "default split: z (POCO's gain / SE)", f"rule (abs z > {CV_DECISIVE_SE:g})",
                     "choice with every fold", "same choice"], sorted(out))


def main() -> None:
    p = runs_parser(__doc__, "fissa,triplett_full,drift,triplett_short", 10000, "crossval_choice.jsonl")
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--default-split-only", action="store_true",
                   help="run only the default split's two runs, for how far apart they are (the settling rule)")
    args = p.parse_args()
    if args.render:
        print(render(args.render))
        return
    set_threads(1)
    done = {(r["dataset"], r["seed"], r["folds"], r.get("split_only", False)) for r in read_jsonl(args.out)}
    for ds in args.datasets.split(","):
        recs, prep = (recordings(ds), PreprocessConfig()) if ds == "cohort" else dataset(ds)
        data = prepare(recs, prep)
        for seed in map(int, args.seeds.split(",")):
            if (ds, seed, args.folds, args.default_split_only) not in done:
                for row in run_cv(ds, data, seed, args.folds, args.max_steps, args.default_split_only):
                    append_jsonl(args.out, row)

if __name__ == "__main__":
    main()
