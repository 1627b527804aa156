"""Engine speed: training steps/s, 200 embedding-only finetuning steps at batch 1 on a 512-unit
session (goal < 5 s on CPU; the paper reports < 15 s on an H100), and one forecast's latency.

    python benchmarks/bench_engine.py [--device cpu] [--threads 1] [--train-steps 20]

CPU-seconds are printed next to wall time: on a machine shared with other work they estimate
the unloaded wall time of a single-threaded run. Uses the default (paper-sized) POCO on simulated sessions; weights are random, which does not
change the cost. Prints one line per measurement and a JSON summary last.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from poco_core.analysis.forecast import forecast
from poco_core.base.allocator import keep_freed_memory
from poco_core.data.preprocess import PreprocessConfig, prepare
from poco_core.data.simulate import simulate_cohort
from poco_core.models import build_model
from poco_core.training.finetune import finetune_events
from poco_core.training.loop import Loop, LoopOptions
from poco_core.training.restore import ModelInfo
from poco_core.training.train import session_specs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--train-units", type=int, default=300)
    ap.add_argument("--finetune-units", type=int, default=512)
    args = ap.parse_args()
    keep_freed_memory()  # as the CLI and GUI jobs do
    if args.threads:
        torch.set_num_threads(args.threads)
    out: dict = {"device": args.device, "threads": torch.get_num_threads()}
    config = PreprocessConfig()

    recs = simulate_cohort(3, n_rois=args.train_units, n_frames=2000, seed=0)
    data = prepare(recs, config)
    torch.manual_seed(0)
    model = build_model("poco", session_specs(data))
    with tempfile.TemporaryDirectory() as tmp:
        loop = Loop(model, data, list(model.parameters()), LoopOptions(batch_size=64, device=args.device),
                    Path(tmp) / "x.pt", dict)
        loop.train_step()  # warm-up (lazy imports, allocator)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(args.train_steps):
            loop.train_step()
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    out["train_steps_per_s"] = args.train_steps / dt
    out["train_steps_per_cpu_s"] = args.train_steps / cpu
    print(f"training: {out['train_steps_per_s']:.2f} steps/s wall, {out['train_steps_per_cpu_s']:.2f} per CPU-second "
          f"(POCO default size, batch 64, "
          f"3 sessions x {args.train_units} units, {sum(p.numel() for p in model.parameters()):,} params)")

    new = simulate_cohort(1, n_rois=args.finetune_units, n_frames=1500, seed=1, prefix="new")
    model.cpu().poco_meta = ModelInfo({sd.session: sd.state for sd in data.sessions}, config)
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        stamps = []  # (wall, cpu) after each event: the run's time up to its last validation excludes test scoring
        for event in finetune_events(model, prepare(new, config), steps=200, batch_size=1, val_every=20,
                                     max_val_windows=16, device=args.device, checkpoint=Path(tmp) / "ft.pt"):
            stamps.append((event, time.perf_counter() - t0, time.process_time() - c0))
    last_val = max(i for i, (e, _, _) in enumerate(stamps) if e["type"] == "forecast_sample")
    _, wall, cpu = stamps[last_val]
    # a step event is yielded right after its step: the time since the previous event is that step's
    steps_wall = sum(w - pw for (e, w, _), (_, pw, _) in zip(stamps[1:], stamps) if e["type"] == "step")
    steps_cpu = sum(c - pc for (e, _, c), (_, _, pc) in zip(stamps[1:], stamps) if e["type"] == "step")
    out.update(finetune_200_steps_s=wall, finetune_200_steps_cpu_s=cpu, finetune_steps_only_s=steps_wall,
               finetune_steps_only_cpu_s=steps_cpu, finetune_with_test_s=stamps[-1][1])
    print(f"finetune: 200 embedding-only steps, batch 1, {args.finetune_units} units, with 10 validations of "
          f"16 windows and checkpoints: {wall:.2f} s wall, {cpu:.2f} CPU-s (goal < 5 s); "
          f"steps only {steps_wall:.2f} s wall, {steps_cpu:.2f} CPU-s; "
          f"with the final test scoring {stamps[-1][1]:.2f} s")

    rec = new[0]
    forecast(model, rec, 1000)
    t0 = time.perf_counter()
    for t in range(1000, 1020):
        forecast(model, rec, t)
    out["forecast_ms"] = (time.perf_counter() - t0) / 20 * 1000
    print(f"forecast: {out['forecast_ms']:.1f} ms per call ({args.finetune_units} units)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
