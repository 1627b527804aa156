"""POCO vs its own MLP (and NLinear, copy) on small real data, multi-session, before/after the
fidelity changes; prints one JSON line per run and appends it to --out (a JSONL cache).

    python benchmarks/small_data.py --datasets triplett_short,fissa,drift --models poco,mlp,nlinear,copy \
        --variants before,after --seeds 0,1,2 --max-steps 1500 --out /tmp/small.jsonl
    python benchmarks/small_data.py --render /tmp/small.jsonl      # Markdown table of the cache

Why: issue 16 -- on small data POCO overfitted within one epoch and the old defaults (validate
every 100 steps, no early stopping) missed its best checkpoint. Datasets:
- triplett_short: the two Triplett et al. 2018 fish (1 Hz placeholder frame rate; the files give
  none) cut into ~800-frame sessions (12 sessions of 75-114 ROIs), one dataset;
- triplett_full: the same two fish as 2 whole sessions;
- fissa: the FISSA suite2p example (1 session, 23 ROIs, 864 frames);
- drift: a simulated cohort (4 x 64 units, 1,000 frames) whose dynamics drift from one network
  to another over the recording, so the test period's dynamics differ from the training period's.
Variants: ``before`` = the old behaviour that options can restore (legacy rotary, no dataset row
in the queries, validation every 100 steps, no early stopping); ``after`` = the defaults after the
fidelity changes, with one learning rate (``cond_lr_scale=1``); ``cond_lr03`` = the population
conditioning at 0.3 x lr; ``warmup`` = the MLP warm-up (``mlp_warmup=True``: POCO's MLP alone, then
everything); further variants (see VARIANTS) are candidates. Rows are kept per --max-steps.
"""
from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, md_table, read_jsonl, runs_parser, set_threads, spread  # noqa: E402

from poco_core.data.io import load_recording  # noqa: E402
from poco_core.data.preprocess import PreprocessConfig, prepare  # noqa: E402
from poco_core.data.recording import Recording  # noqa: E402
from poco_core.data.simulate import simulate_cohort  # noqa: E402
from poco_core.training.train import train  # noqa: E402

DATA = Path("/work/shared/data")
TRIPLETT = [DATA / "triplett2018_zebrafish" / f for f in ("zf_20151104-f1", "zf_20170215-f3")]
FISSA = DATA / "suite2p_fissa_example" / "suite2p" / "plane0"
# CPU-sized models, as benchmarks/reproduce.py (POCO 0.25 M parameters instead of 1.5 M)
ENCODER = {"d_model": 64, "self_attn_heads": 4, "self_attn_head_dim": 16, "cross_head_dim": 16}
SIZES = {"poco": {"hidden": 256, **ENCODER}, "mlp": {"hidden": 256}}
LEGACY_MODEL = {"poco": {"rotary": "legacy", "query_dataset_embedding": False}}
# what every variant departs from: the reference's procedure (one stage, one learning rate), whatever
# the training defaults are now
ONE_STAGE = {"mlp_warmup": False, "cond_lr_scale": 1.0, "embedding_lr_scale": 1.0}
VARIANTS: dict[str, dict] = {
    "before": {"loop": {"val_every": 100, "patience": 0}, "model": LEGACY_MODEL},
    # the section-1 defaults: one learning rate, one stage
    "after": {"loop": {}, "model": {}},
    # candidate fixes for POCO's overfitting (other models run as "after")
    # encoder, embeddings and FiLM maps (weights and biases) at lr x 0.1 / 0.3, the MLP at lr
    "cond_lr": {"loop": {"cond_lr_scale": 0.1}, "model": {}},
    "cond_lr03": {"loop": {"cond_lr_scale": 0.3}, "model": {}},
    "unit_dropout": {"loop": {}, "model": {"poco": {"unit_dropout": 0.3}}},
    "residual": {"loop": {}, "model": {"poco": {"film": "residual"}}},
    # the MLP first (conditioning frozen at alpha = 1, beta = 0), then everything from its best;
    # the warm-up capped at 0.5 or 0.75 of the steps; stage 2 kept if its validation MSE is lower at all
    "warmup": {"loop": {"mlp_warmup": True, "cond_lr_scale": 1.0, "mlp_warmup_se": 0.0}, "model": {},
               "warmup_fraction": 0.5},
    "warmup75": {"loop": {"mlp_warmup": True, "cond_lr_scale": 1.0, "mlp_warmup_se": 0.0}, "model": {},
                 "warmup_fraction": 0.75},
    "warmup75_cond03": {"loop": {"mlp_warmup": True, "cond_lr_scale": 0.3, "mlp_warmup_se": 0.0}, "model": {},
                        "warmup_fraction": 0.75},
    # ... or only if lower by more than one standard error of the paired difference (the 1-SE rule)
    "warmup75_se1": {"loop": {"mlp_warmup": True, "cond_lr_scale": 1.0, "mlp_warmup_se": 1.0, "embedding_lr_scale": 1.0},
                     "model": {}, "warmup_fraction": 0.75},
    # ... with the unit and session embeddings at 10 x lr (section 7.3), in one stage or after the warm-up
    "emb_lr10": {"loop": {"embedding_lr_scale": 10.0}, "model": {}},
    "warmup75_se1_emb10": {"loop": {"mlp_warmup": True, "cond_lr_scale": 1.0, "mlp_warmup_se": 1.0,
                                    "embedding_lr_scale": 10.0}, "model": {}, "warmup_fraction": 0.75},
}


def cut_sessions(rec: Recording, length: int) -> list[Recording]:
    """Consecutive sessions of ``length`` frames (the last absorbs the remainder)."""
    n = max(1, rec.n_frames // length)
    edges = [i * length for i in range(n)] + [rec.n_frames]
    return [dataclasses.replace(rec, traces=np.asarray(rec.traces[a:b]), session=f"{rec.session}-{i}", extra_traces={})
            for i, (a, b) in enumerate(zip(edges[:-1], edges[1:]))]


def drift_cohort(n_sessions: int = 4, n_units: int = 64, n_frames: int = 1000, seed: int = 0) -> list[Recording]:
    """Each session blends its individual from two cohorts with different templates, the weight of
    the second rising linearly over the recording: the dynamics drift between train and test."""
    a = simulate_cohort(n_sessions, n_units, n_frames, sigma_j=0.2, seed=seed)
    b = simulate_cohort(n_sessions, n_units, n_frames, sigma_j=0.2, seed=seed + 1000)
    w = np.linspace(0, 1, n_frames, dtype=np.float32)[:, None]
    return [dataclasses.replace(ra, traces=(1 - w) * ra.traces + w * rb.traces, dataset="drift")
            for ra, rb in zip(a, b)]


def dataset(name: str) -> tuple[list[Recording], PreprocessConfig]:
    if name == "triplett_short":
        return [s for p in TRIPLETT for s in cut_sessions(load_recording(p), 800)], PreprocessConfig()
    if name == "triplett_full":
        return [load_recording(p) for p in TRIPLETT], PreprocessConfig()
    if name == "fissa":
        return [load_recording(FISSA)], PreprocessConfig()
    if name == "drift":
        return drift_cohort(), PreprocessConfig(block_len=1000)
    raise SystemExit(f"unknown dataset {name!r}")


def run_one(ds: str, model: str, variant: str, seed: int, max_steps: int) -> dict:
    recs, prep = dataset(ds)
    v = VARIANTS[variant]
    cfg = {**SIZES.get(model, {}), **v["model"].get(model, {})}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cap = {"mlp_warmup_steps": round(max_steps * v["warmup_fraction"])} if "warmup_fraction" in v else {}
        loop = {**ONE_STAGE, **v["loop"], **cap}
        run = train(prepare(recs, prep), model, steps=max_steps, seed=seed, device="cpu",
                    checkpoint=Path(tmp) / "m.pt", model_config=cfg, **loop)
        done = run.wait()
        wall = time.perf_counter() - t0
    vals = run.validations
    return {"dataset": ds, "model": model, "variant": variant, "seed": seed, "max_steps": max_steps,
            "score": done["test"].get("score"), "mse": done["test"].get("mse"), "best_step": done["best_step"],
            "last_step": done.get("last_step"), "stop_reason": done.get("stop_reason"), "wall_s": round(wall, 1),
            "n_sessions": len(recs), "n_validations": len(vals), "stages": done.get("stages", []),
            "val_curve": [(e["step"], round(e["val_mse"], 4)) for e in vals],
            "vs_mlp": [(e["step"], round(e["vs_mlp"]["gain"], 5), round(e["vs_mlp"]["se"], 5)) for e in vals if "vs_mlp" in e]}


def render(path: Path) -> str:
    rows = read_jsonl(path)
    rows = list({(r["dataset"], r["model"], r["variant"], r["seed"], r["max_steps"]): r for r in rows}.values())  # last run wins
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["variant"], r["model"], r["max_steps"]), []).append(r)
    out = []
    for (ds, var, model, steps), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["seed"])
        out.append([ds, var, model, steps, len(rs), spread([r["score"] for r in rs]),
                    "/".join(str(r["best_step"]) for r in rs), "/".join(str(r["last_step"]) for r in rs),
                    f"{np.mean([r['wall_s'] for r in rs]):.0f}"])
    return md_table(["dataset", "variant", "model", "max steps", "seeds", "test score", "best step", "last step", "wall s (mean)"], out)


def main() -> None:
    p = runs_parser(__doc__, "triplett_short,fissa,drift", 1500, "small_data.jsonl")
    p.add_argument("--models", default="poco,mlp,nlinear,copy")
    p.add_argument("--variants", default="before,after")
    args = p.parse_args()
    if args.render:
        print(render(args.render))
        return
    set_threads(1)
    done = {(r["dataset"], r["model"], r["variant"], r["seed"], r["max_steps"]) for r in read_jsonl(args.out)}
    for ds in args.datasets.split(","):
        for seed in map(int, args.seeds.split(",")):
            for variant in args.variants.split(","):
                for model in args.models.split(","):
                    if model == "copy" and variant != "after":  # parameter-free: one run is enough
                        continue
                    if model != "poco" and variant not in ("before", "after"):  # POCO-only candidates
                        continue
                    if (ds, model, variant, seed, args.max_steps) in done:
                        continue
                    r = run_one(ds, model, variant, seed, args.max_steps)
                    append_jsonl(args.out, r)


if __name__ == "__main__":
    main()
