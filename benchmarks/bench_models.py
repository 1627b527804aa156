"""POCO speed and memory on this machine (issue 20's goals, 2 threads: single-window inference
for 512 units <= 3.5 ms median, fp32 included; a training step <= 0.6 s at 512 units x batch 64,
<= 0.12 s at 10,000 units and <= 1.5 s within 2 GB at 80,000 units, batch 1).

Inference is timed as forecasting runs it (``poco_core.models.inference.predict``), in fp32 and in
bf16 ("emulated" where this CPU has no native bf16: then ``precision='auto'`` uses fp32).

Each case runs in its own subprocess so ``ru_maxrss`` (the process's peak resident memory)
belongs to that case alone; memory is reported as the peak increase over the state just
after building the model and its inputs, and as the absolute peak.

    python benchmarks/bench_models.py                  # all cases, default model config
    python benchmarks/bench_models.py --threads 1      # pin torch's intra-op threads
    python benchmarks/bench_models.py --case 512 --batch 64 --runs 200
    python benchmarks/bench_models.py --threads 2 --compare /tmp/old_tree --repeat 2   # old vs this tree

``--compare TREE`` runs every case alternately with ``TREE``'s poco_core (a checkout of another
commit: ``git archive COMMIT | tar -x -C TREE``) and this tree's, ``--repeat`` times, so both see the
same machine load; every row records the 1-minute load average at its start and end, and CPU
seconds next to wall seconds (on a shared machine wall time is inflated by the others' work).
``--train-precision bf16`` times training steps under bf16 autocast (fp32 master weights).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = [  # (units, training batch, inference runs, training steps)
    (512, 64, 200, 20),
    (10_000, 1, 50, 5),
    (80_000, 1, 10, 3),
]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_case(units: int, batch: int, runs: int, steps: int, model_name: str, device: str = "cpu",
             train_precision: str = "fp32", emulated_bf16: bool = False) -> dict:
    import contextlib

    import torch

    from poco_core.base.device import resolve_device
    from poco_core.models import SessionSpec, build_model
    from poco_core.models import precision as prec
    from poco_core.models.inference import native_bf16, predict

    torch.manual_seed(0)
    dev = resolve_device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = build_model(model_name, [SessionSpec("bench", "bench", [f"u{i}" for i in range(units)])]).to(dev)
    c, p = model.config.context, model.config.horizon
    window = [torch.randn(1, c, units, device=dev)]
    train_batch = [torch.randn(batch, c + p, units, device=dev)]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-4, amsgrad=True)
    base = _rss_mb()

    model.eval()
    infer = {}
    prec.forget()
    for precision in ("fp32", "bf16", "auto"):  # what poco_core.models.inference.predict runs (forecast, live)
        if precision == "bf16" and not (native_bf16(dev) or emulated_bf16):
            infer[precision] = (float("nan"), float("nan"))  # emulated bf16 can be 50x slower than fp32
            continue
        times = []
        for i in range(runs + 5):
            t0 = time.perf_counter()
            predict(model, window, ["bench"], precision)
            sync()
            if i >= 5:  # warm-up (and, for bf16, making the model's bf16 copy once)
                times.append(time.perf_counter() - t0)
        times.sort()
        infer[precision] = (1e3 * statistics.median(times), 1e3 * times[min(len(times) - 1, int(0.99 * len(times)))])
    inference_peak = _rss_mb()

    model.train()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    step_times, step_cpu = [], []
    for i in range(steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        amp = (torch.autocast(dev.type, dtype=torch.bfloat16) if train_precision == "bf16"
               else contextlib.nullcontext())
        with amp:
            loss = model.loss(train_batch, ["bench"])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sync()
        if i >= 1:
            step_times.append(time.perf_counter() - t0)
            step_cpu.append(time.process_time() - c0)
    train_peak = _rss_mb()
    gpu_peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
    return {
        "units": units,
        "threads": torch.get_num_threads(),
        "infer_median_ms": infer["fp32"][0],
        "infer_p99_ms": infer["fp32"][1],
        "infer_bf16_median_ms": infer["bf16"][0],
        "infer_bf16_p99_ms": infer["bf16"][1],
        "infer_auto_median_ms": infer["auto"][0],
        "infer_auto_p99_ms": infer["auto"][1],
        "bf16_native": native_bf16(dev),
        "device": str(dev),
        "infer_peak_mb": inference_peak - base,
        "train_batch": batch,
        "train_steps_per_s": 1 / statistics.median(step_times),
        "train_step_s": statistics.median(step_times),
        "train_step_cpu_s": statistics.median(step_cpu),
        "train_precision": train_precision,
        "gpu_peak_mb": gpu_peak,
        "train_peak_mb": train_peak - base,
        "abs_peak_mb": train_peak,
    }


def _child(a: argparse.Namespace, units: int, batch: int, runs: int, steps: int, tree: str | None) -> dict:
    """One case in a fresh process (with ``tree``'s poco_core first on the path when given)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--model", a.model, "--case", str(units),
           "--batch", str(batch), "--runs", str(runs), "--steps", str(steps), "--device", a.device,
           "--train-precision", a.train_precision, "--json"] + (["--emulated-bf16"] if a.emulated_bf16 else [])
    if a.threads:
        cmd += ["--threads", str(a.threads)]
    if a.system_malloc:
        cmd.append("--system-malloc")
    root = tree or str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    load0 = os.getloadavg()[0]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return {**r, "tree": tree or "this", "load_start": load0, "load_end": os.getloadavg()[0]}


def _row(r: dict) -> str:
    gpu = "" if r.get("gpu_peak_mb") is None else f" | GPU {r['gpu_peak_mb']:.0f} MB"
    return (f"{r['tree'][-14:]:>14} {r['units']:>6} | {r['infer_median_ms']:8.2f} / {r['infer_p99_ms']:8.2f}"
            f" | {r['infer_bf16_median_ms']:8.2f}{'' if r['bf16_native'] else ' (emul.)'}"
            f" | {r['infer_auto_median_ms']:8.2f} | {r['infer_peak_mb']:6.0f} MB"
            f" | {r['train_step_s']:7.3f} s wall {r['train_step_cpu_s']:7.3f} s CPU ({r['train_batch']:>2}, {r['train_precision']})"
            f" | {r['train_peak_mb']:6.0f} MB | {r['abs_peak_mb']:6.0f} MB{gpu}"
            f" | load {r['load_start']:.1f}-{r['load_end']:.1f} [{r['threads']} threads]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="poco")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto (cuda > mps > cpu)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--case", type=int, default=None, help="run one case with this many units (in-process)")
    ap.add_argument("--cases", type=int, nargs="*", default=None, help="units of the cases to run (default: all)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=None, help="inference runs (default: 200, or the case table's)")
    ap.add_argument("--steps", type=int, default=None, help="timed training steps (default: 5, or the case table's)")
    ap.add_argument("--train-precision", choices=("fp32", "bf16"), default="fp32",
                    help="bf16: training steps under torch.autocast (fp32 master weights)")
    ap.add_argument("--emulated-bf16", action="store_true",
                    help="time bf16 inference even where bf16 is not native (skipped by default: very slow)")
    ap.add_argument("--compare", default=None, metavar="TREE", help="also run every case with TREE's poco_core, interleaved")
    ap.add_argument("--repeat", type=int, default=1, help="with --compare: alternate old/new this many times")
    ap.add_argument("--json-out", type=Path, default=None, help="append every case's result to this JSON-lines file")
    ap.add_argument("--json", action="store_true", help="print the result as JSON (used by the driver)")
    ap.add_argument("--system-malloc", action="store_true",
                    help="leave glibc's defaults (the CLI and GUI jobs call poco_core.base.allocator.keep_freed_memory)")
    a = ap.parse_args()
    if not a.system_malloc:
        from poco_core.base.allocator import keep_freed_memory

        keep_freed_memory()
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    if a.case is not None:
        r = run_case(a.case, a.batch, a.runs or 200, a.steps or 5, a.model, a.device, a.train_precision, a.emulated_bf16)
        print(json.dumps(r) if a.json else r)
        return
    print(f"{a.model}: {'tree':>6} {'units':>6} | infer median / p99 (ms, batch 1): fp32 | bf16 | auto | infer peak "
          "| train step median (batch, precision) | train peak | abs peak | load")
    trees = [a.compare, None] if a.compare else [None]
    for units, batch, runs, steps in CASES:
        if a.cases and units not in a.cases:
            continue
        for rep in range(a.repeat if a.compare else 1):
            for tree in trees if rep % 2 == 0 else trees[::-1]:
                r = _child(a, units, batch, a.runs or runs, a.steps or steps, tree)
                print(_row(r), flush=True)
                if a.json_out:
                    with a.json_out.open("a") as f:
                        f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
