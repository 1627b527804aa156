"""A whole-brain run (issue 20): a simulated 70,000-ROI x 8,000-frame recording (one ZAPBench
fish, 2.2 GB as float32) as a memory-mapped .npy, trained multi-session with a second, smaller
session, streaming every window from the memmaps.

The recordings are low-rank population dynamics plus noise (K slow latent factors, random
loadings, written 500 frames at a time), made once into --dir. Preprocessing fits its statistics
block by block and writes the model values to a scratch memmap (poco_core.data.preprocess,
STREAM_BYTES), so the process never holds a recording whole; its own (anonymous) memory is
reported apart from the file pages of the memmaps, which the kernel can drop at any time.

    python benchmarks/whole_brain.py --dir /tmp/whole_brain --epochs 4 --bf16 --threads 2 \\
        --json docs/bench/whole_brain.json

An epoch is one pass over the training windows at ``--train-stride`` (default: the window length,
so every training frame is in one window per epoch; at stride 1 an epoch is 8,576 windows, hours
per epoch on a CPU). ``--steps`` overrides the budget that ``--epochs`` gives.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from _common import machine_info, set_threads

SESSIONS = {"fish_big": 70_000, "fish_small": 5_000}  # ROIs; both 8,000 frames
FRAMES, FACTORS, BLOCK = 8_000, 16, 500


def simulate(path: Path, n_rois: int, seed: int) -> None:
    """Low-rank dynamics: K AR(1) latent factors (time constant ~20 frames) x random loadings + noise."""
    if path.exists():
        return
    rng = np.random.default_rng(seed)
    z = np.zeros((FRAMES, FACTORS), np.float32)
    for t in range(1, FRAMES):
        z[t] = 0.95 * z[t - 1] + 0.3 * rng.standard_normal(FACTORS)
    loadings = rng.standard_normal((FACTORS, n_rois)).astype(np.float32) / np.sqrt(FACTORS)
    tmp = path.with_suffix(".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(FRAMES, n_rois))
    for lo in range(0, FRAMES, BLOCK):
        hi = min(lo + BLOCK, FRAMES)
        out[lo:hi] = z[lo:hi] @ loadings + 0.5 * rng.standard_normal((hi - lo, n_rois), dtype=np.float32)
    out.flush()
    del out
    tmp.rename(path)


def memory_mb() -> dict[str, float]:
    """Peak resident set (VmHWM, includes memmap file pages) and the current anonymous and file parts."""
    info = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "RssAnon", "RssFile"):
            info[key] = int(value.split()[0]) / 1024
    return info


def epoch_times(steps: list[dict], epoch_steps: float) -> list[float]:
    """Wall seconds of each whole epoch (validations included), from the per-step log."""
    ends, out, last = [], [], 0.0
    for k in range(1, int(len(steps) / epoch_steps) + 1):
        ends.append(next(s["elapsed_s"] for s in steps if s["step"] >= k * epoch_steps))
    for end in ends:
        out.append(end - last)
        last = end
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/whole_brain"))
    ap.add_argument("--epochs", type=float, default=4.0)
    ap.add_argument("--steps", type=int, default=None, help="optimisation steps (default: --epochs of them)")
    ap.add_argument("--train-stride", type=int, default=64, help="frames between training windows (default 64: the window)")
    ap.add_argument("--batch-size", type=int, default=1, help="windows per step (one dataset: both fish)")
    ap.add_argument("--val-every", type=int, default=None, help="default: four validations per epoch")
    ap.add_argument("--max-val-windows", type=int, default=4, help="validation windows per session")
    ap.add_argument("--test-stride", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--model", default="poco", help="registered model (default poco)")
    ap.add_argument("--mlp-warmup", action=argparse.BooleanOptionalAction, default=None,
                    help="POCO's MLP warm-up (default: the training default)")
    ap.add_argument("--patience", type=int, default=0, help="early stopping (default 0: run every step)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    set_threads(a.threads)
    from poco_core.base.allocator import keep_freed_memory

    keep_freed_memory()
    from poco_core.data.io import load_recording
    from poco_core.data.preprocess import PreprocessConfig, prepare
    from poco_core.training.train import train_events

    a.dir.mkdir(parents=True, exist_ok=True)
    print("disk:", shutil.disk_usage(a.dir)._asdict(), flush=True)
    t0 = time.perf_counter()
    for i, (name, n) in enumerate(SESSIONS.items()):
        simulate(a.dir / f"{name}.npy", n, seed=i)
    t_sim = time.perf_counter() - t0
    # frames x ROIs as written (the reader's auto orientation would take 70,000 columns for frames)
    recs = [load_recording(a.dir / f"{name}.npy", fs=1.0, rois_first=False) for name in SESSIONS]
    assert all(isinstance(r.traces, np.memmap) for r in recs), "the recordings must stay memory-mapped"
    assert [r.n_rois for r in recs] == list(SESSIONS.values()) and recs[0].n_frames == FRAMES
    t0 = time.perf_counter()
    data = prepare(recs, PreprocessConfig(block_len=1000))
    t_prep = time.perf_counter() - t0
    assert isinstance(data.sessions[0].values, np.memmap), "the big session's model values must be a memmap"
    mem_prep = memory_mb()
    print(f"simulated in {t_sim:.0f} s, prepared in {t_prep:.0f} s, memory {mem_prep}", flush=True)

    length = 64
    train_windows = sum(len(sd.windows("train", length, a.train_stride)) for sd in data.sessions)
    epoch_steps = train_windows / a.batch_size  # one dataset: each step draws batch_size windows of it
    n_steps = a.steps or max(1, round(a.epochs * epoch_steps))
    val_every = a.val_every or max(1, round(epoch_steps / 4))
    print(f"{train_windows} training windows at stride {a.train_stride}: {n_steps} steps, "
          f"validation every {val_every}", flush=True)
    rows, steps, t_start = [], [], time.perf_counter()
    warmup = {} if a.mlp_warmup is None else {"mlp_warmup": a.mlp_warmup}
    for ev in train_events(data, a.model, checkpoint=a.dir / f"{a.model}.pt", steps=n_steps, batch_size=a.batch_size,
                           val_every=val_every, max_val_windows=a.max_val_windows, eval_batch_size=1,
                           train_stride=a.train_stride, test_stride=a.test_stride, patience=a.patience, device="cpu",
                           bf16=a.bf16, lr=3e-4, **warmup):
        if ev["type"] == "step":
            steps.append({"step": ev["step"], "loss": ev["loss"], "elapsed_s": ev["elapsed_s"], **memory_mb()})
            print(f"step {ev['step']}: loss {ev['loss']:.4f}, {ev['elapsed_s']:.0f} s, {memory_mb()}", flush=True)
        elif ev["type"] == "validation":
            rows.append({"step": ev["step"], "epoch": ev["step"] / epoch_steps, "val_mse": ev["val_mse"],
                         "best": ev["best"], **({"vs_mlp": ev["vs_mlp"]} if "vs_mlp" in ev else {}),
                         "val_score": ev["val_score"], "elapsed_s": time.perf_counter() - t_start, **memory_mb()})
            gate = ev.get("vs_mlp")  # the warm-up's stage 2: the gain over the MLP and what it needs
            print(f"validation at {ev['step']}: mse {ev['val_mse']:.4f} score {ev['val_score']:.4f}"
                  + (f"; {gate['gain']:+.4f} vs the MLP (needs > {gate['needed']:.4f})" if gate else ""), flush=True)
        elif ev["type"] in ("stage", "warning"):
            print(ev.get("note") or ev.get("message") or ev, flush=True)
        elif ev["type"] == "done":
            done = ev
    total = time.perf_counter() - t_start
    step_times = np.diff([0.0] + [s["elapsed_s"] for s in steps])
    per_step = float(np.median(step_times))
    result = {
        "machine": machine_info("cpu"), "model": a.model, "mlp_warmup": a.mlp_warmup, "patience": a.patience,
        "best_step": done.get("best_step"), "stop_reason": done.get("stop_reason"), "sessions": SESSIONS, "frames": FRAMES, "steps": n_steps,
        "epochs": n_steps / epoch_steps, "train_stride": a.train_stride, "val_every": val_every,
        "batch_size": a.batch_size, "bf16": a.bf16, "simulate_s": t_sim, "prepare_s": t_prep,
        "memory_after_prepare_mb": mem_prep, "train_windows_per_epoch": train_windows,
        "step_s_median": per_step, "epoch_s": epoch_times(steps, epoch_steps),
        "run_s": total, "steps_log": steps, "validation": rows,
        "test_score": done["test"].get("score"), "test_mse": done["test"].get("mse"),
        "peak_anon_mb": max(s["RssAnon"] for s in steps), "peak_rss_mb": memory_mb()["VmHWM"],
    }
    print(json.dumps({k: v for k, v in result.items() if k not in ("steps_log",)}, indent=1))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
