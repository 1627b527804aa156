"""Headless demo: train a small POCO on the sample cohort and print its test score against copy.

`python -m poco_core.demo [--steps N]` (also `make demo ARGS=--headless`). Uses the repository's
``sample_data/`` or, in an installed package, regenerates it into a cache folder first.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from poco_core.analysis.evaluate import evaluate
from poco_core.data.io import load_dataset
from poco_core.data.preprocess import prepare
from poco_core.training.train import train

REPO_SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"


def sample_data_dir() -> Path:
    """The sample data folder: the repository's, else a regenerated copy in the user's cache."""
    if (REPO_SAMPLES / "cohort" / "manifest.json").exists():
        return REPO_SAMPLES
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "poco-studio" / "sample_data"
    if not (cache / "cohort" / "manifest.json").exists():
        from poco_core.data.simulate import make_sample_data

        make_sample_data(cache)
    return cache


def run(steps: int = 300, device: str = "auto", seed: int = 0) -> dict[str, float]:
    """Train POCO on the sample cohort; returns {"poco": score, "copy": 0.0} on the test windows."""
    import torch

    # one thread: this small model gains little from a second one, and on a busy 2-core machine
    # two torch threads spend most of their time waiting for each other (measured 10x slower)
    torch.set_num_threads(1)
    recs = load_dataset(sample_data_dir() / "cohort" / "manifest.json")
    data = prepare(recs)
    print(f"sample cohort: {len(recs)} sessions, {sum(r.n_rois for r in recs)} ROIs, "
          f"{recs[0].n_frames} frames each at {recs[0].fs:g} Hz")
    # a small POCO (hidden 256 instead of 1024) and a bounded validation set keep this to a few
    # CPU minutes; everything else is the paper's configuration
    run_ = train(data, "poco", steps=steps, device=device, seed=seed, val_every=max(steps // 5, 1),
                 hidden=256, batch_size=32, lr=1e-3, max_val_windows=256)
    for event in run_.events():
        if event["type"] == "validation":
            print(f"  step {event['step']:5d}  validation score {event['val_score']:+.3f}")
    result = evaluate(run_.model, data, split="test")
    print(f"\ntest prediction score (1 - MSE/MSE_copy), mean over {len(result.sessions)} sessions:")
    print(f"  POCO  {result.score:+.3f}")
    print("  copy  +0.000  (baseline: repeat the last frame)")
    print(f"checkpoint: {run_.best_checkpoint}")
    return {"poco": result.score, "copy": 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m poco_core.demo", description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run(args.steps, args.device, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
