"""Speed and scale of POCO, with MLP and NLinear as reference points; writes <out>/performance.md
and <out>/figures/performance_scaling.png.

    python benchmarks/bench_speed.py [--quick | --smoke] [--device auto] [--threads 1] [--out docs]

Measures, through the engine's public API (train, finetune, load_model, forecast): training
steps/s (batch 64, 512 units), 200 finetuning steps at batch 1 (512 units; POCO trains only the
new embeddings, MLP/NLinear have none and train everything), single-window forecast latency
(median, p99), and one training step and one forecast against the number of neurons. Every
case runs in its own child process so its peak memory (ru_maxrss on CPU,
torch.cuda.max_memory_allocated on GPU) is its own. Paper-sized (default) model configs;
weights barely trained, which does not change the cost.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    REPO,
    git_commit,
    machine_info,
    machine_markdown,
    md_table,
    new_figure,
    save_figure,
    set_threads,
)

MODELS = ("poco", "mlp", "nlinear")
NO_VALIDATION = 10**9  # val_every beyond the run: only the closing validation happens
PAPER_FINETUNE_S = 15.0  # 200 embedding-only steps, H100 (paper, appendix D)
PAPER_FORECAST_MS = 3.5


@dataclass(frozen=True)
class Profile:
    train_units: int
    train_batch: int
    train_steps: int
    finetune_steps: int
    forecast_reps: int
    scale_units: tuple[int, ...]
    scale_batch: int = 1
    frames: int = 400


PROFILES = {
    "smoke": Profile(128, 8, 2, 10, 5, (256, 1024)),
    "quick": Profile(512, 64, 8, 200, 50, (1000, 10000)),
    "full": Profile(512, 64, 30, 200, 200, (1000, 10000, 80000)),
}


# -- measurements (run inside a child process) ----------------------------------------------------

def random_recording(n_units: int, n_frames: int, session: str):
    """Smooth random traces (random walks), filled in column blocks so that making 80k neurons adds
    no memory peak of its own; cost does not depend on the values."""
    from poco_core.data.recording import Recording

    rng = np.random.default_rng(sum(map(ord, session)))
    x = np.empty((n_frames, n_units), dtype=np.float32)
    for lo in range(0, n_units, 4096):
        hi = min(lo + 4096, n_units)
        x[:, lo:hi] = np.cumsum(rng.standard_normal((n_frames, hi - lo), dtype=np.float32), axis=0)
    return Recording(traces=x, fs=2.0, roi_ids=np.array([f"u{i}" for i in range(n_units)]),
                     session=session, dataset="bench")


class Meter:
    """Wall and CPU time, and peak memory of what runs between start() and stop()."""

    def __init__(self, device):
        import torch

        self.torch, self.device = torch, device

    def start(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()
        self.base_mb = _rss_mb()
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def stop(self) -> dict[str, float]:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()
        out = {"wall_s": time.perf_counter() - self.t0, "cpu_s": time.process_time() - self.c0}
        if self.device.type == "cuda":
            out["peak_mb"] = self.torch.cuda.max_memory_allocated() / 2**20
            out["delta_mb"] = out["peak_mb"]
        else:
            out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            out["delta_mb"] = out["peak_mb"] - self.base_mb
        return out


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _train_opts(device: str, batch: int, steps: int) -> dict[str, Any]:
    return dict(steps=steps, batch_size=batch, device=device, val_every=NO_VALIDATION, max_val_windows=1,
                test_stride=NO_VALIDATION, eval_batch_size=1)


def _timed_steps(run, meter: Meter, skip: int) -> dict[str, float]:
    """Time a run's steps after the first `skip` (warm-up) up to its closing validation."""
    events, steps, result = run.events(), 0, None
    for event in events:
        if event["type"] == "start" and skip == 0:
            meter.start()
        elif event["type"] == "step":
            steps += 1
            if steps == skip:
                meter.start()
        elif event["type"] == "validation":
            result = meter.stop() | {"steps": steps - skip}
            break
    for _ in events:  # the rest of the run: test metrics, checkpoint
        pass
    if result is None:
        raise RuntimeError("the run ended without validating")
    return result


def case_train(model: str, units: int, batch: int, steps: int, frames: int, device: str, ckpt: str) -> dict:
    """Training steps of `model` on one session; leaves the checkpoint for the forecast case."""
    from poco_core.base.device import resolve_device
    from poco_core.data.preprocess import prepare
    from poco_core.training.train import train

    data = prepare([random_recording(units, frames, "a")])
    meter = Meter(resolve_device(device))
    run = train(data, model, checkpoint=ckpt, **_train_opts(device, batch, steps + 1))
    result = _timed_steps(run, meter, skip=1)
    result["params"] = sum(p.numel() for p in run.model.parameters())
    return result


def case_finetune(model: str, units: int, steps: int, frames: int, device: str, ckpt: str) -> dict:
    """`steps` finetuning steps at batch 1 on a new session, from the checkpoint of case_train."""
    from poco_core.base.device import resolve_device
    from poco_core.data.preprocess import prepare
    from poco_core.training.finetune import finetune

    data = prepare([random_recording(units, frames, "b")])
    mode = "embeddings" if model == "poco" else "all"
    meter = Meter(resolve_device(device))
    t0 = time.perf_counter()
    run = finetune(ckpt, data, mode=mode, checkpoint=str(Path(ckpt).with_suffix(".ft.pt")),
                   **_train_opts(device, 1, steps))
    result = _timed_steps(run, meter, skip=0)
    result |= {"mode": mode, "total_wall_s": time.perf_counter() - t0}
    return result


def case_forecast(model: str, units: int, reps: int, frames: int, device: str, ckpt: str) -> dict:
    """Latency of `forecast` (one context window, all units) with the trained checkpoint."""
    import torch

    from poco_core.analysis.forecast import forecast
    from poco_core.base.device import resolve_device
    from poco_core.training.restore import load_model

    dev = resolve_device(device)
    rec = random_recording(units, frames, "a")
    net = load_model(ckpt).to(dev)
    t = rec.n_frames - 1
    meter, times = Meter(dev), []
    meter.start()  # memory from the first (cold) call on; time from the fourth
    for _ in range(3):
        forecast(net, rec, t)
    c0 = time.process_time()
    for _ in range(reps):
        t0 = time.perf_counter()
        forecast(net, rec, t)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    cpu_ms = (time.process_time() - c0) * 1000 / reps
    ms = np.array(times) * 1000
    return meter.stop() | {"median_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99)), "cpu_ms": cpu_ms}


CASES: dict[str, Callable[..., dict]] = {"train": case_train, "finetune": case_finetune, "forecast": case_forecast}


def child(spec: dict) -> None:
    set_threads(spec.pop("threads"))
    kind = spec.pop("kind")
    print("RESULT " + json.dumps(CASES[kind](**spec)), flush=True)


def measure(kind: str, inline: bool, **spec: Any) -> dict:
    """Run one case in a fresh interpreter, so its peak memory is its own (or here, when `inline`)."""
    if inline:
        result = CASES[kind](**{k: v for k, v in spec.items() if k != "threads"})
    else:
        proc = subprocess.run([sys.executable, __file__, "--case", json.dumps({"kind": kind, **spec})],
                              capture_output=True, text=True, cwd=REPO)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            raise RuntimeError(f"{kind} {spec} failed:\n{proc.stderr[-3000:]}")
        result = json.loads(lines[-1][7:])
    print(f"{kind} {spec.get('model')} {spec.get('units')}: "
          + ", ".join(f"{k}={v:.4g}" for k, v in result.items() if isinstance(v, float)), flush=True)
    return result


# -- the report --------------------------------------------------------------------------------

def run_benchmarks(p: Profile, device: str, threads: int, work: str, inline: bool) -> dict[str, Any]:
    common = dict(device=device, threads=threads, frames=p.frames, inline=inline)
    out: dict[str, Any] = {"train": {}, "finetune": {}, "forecast": {}, "scale": []}
    for m in MODELS:
        ckpt = f"{work}/{m}-{p.train_units}.pt"
        out["train"][m] = measure("train", model=m, units=p.train_units, batch=p.train_batch, steps=p.train_steps,
                                  ckpt=ckpt, **common)
        out["finetune"][m] = measure("finetune", model=m, units=p.train_units, steps=p.finetune_steps, ckpt=ckpt, **common)
        out["forecast"][m] = measure("forecast", model=m, units=p.train_units, reps=p.forecast_reps, ckpt=ckpt, **common)
    for n in p.scale_units:
        for m in MODELS:
            ckpt = f"{work}/{m}-{n}.pt"
            step = measure("train", model=m, units=n, batch=p.scale_batch, steps=1, ckpt=ckpt, **common)
            fc = measure("forecast", model=m, units=n, reps=3, ckpt=ckpt, **common)
            out["scale"].append({"model": m, "units": n, "train": step, "forecast": fc})
    return out


def scaling_figure(scale: list[dict], fig_path: Path) -> str:
    fig, (ax_t, ax_m) = new_figure(2)
    for m in MODELS:
        rows = [r for r in scale if r["model"] == m]
        n = np.array([r["units"] for r in rows])
        ax_t.plot(n, [r["train"]["wall_s"] for r in rows], "o-", label=f"{m}: train step")
        ax_t.plot(n, [r["forecast"]["median_ms"] / 1000 for r in rows], "s--", label=f"{m}: forecast")
        ax_m.plot(n, [max(r["train"]["delta_mb"], 1e-1) for r in rows], "o-", label=f"{m}: train step")
        ax_m.plot(n, [max(r["forecast"]["delta_mb"], 1e-1) for r in rows], "s--", label=f"{m}: forecast")
    n = np.array(sorted({r["units"] for r in scale}), dtype=float)
    poco = [r for r in scale if r["model"] == "poco"]
    for ax, y0 in ((ax_t, poco[0]["train"]["wall_s"]), (ax_m, max(poco[0]["train"]["delta_mb"], 1e-1))):
        ax.plot(n, y0 * n / n[0], ":", color="gray", label="linear (from POCO's first point)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("neurons")
    ax_t.set_ylabel("seconds")
    ax_m.set_ylabel("memory added by the step / forecast (MB)")
    ax_t.legend(fontsize=6)
    ax_m.legend(fontsize=6)
    return save_figure(fig, fig_path)


def write_report(res: dict, p: Profile, mode: str, info: dict, commit: str, minutes: float, out: Path,
                 inline: bool) -> Path:
    mem = "peak GPU memory allocated" if info["device"].startswith("cuda") else "peak RSS of the process"
    where = ("all cases in one process (--inline), so peak memory includes earlier cases" if inline
             else "each case in a fresh child process")
    train_rows = [[m, f"{r['params']:,}", f"{r['steps'] / r['wall_s']:.2f}", f"{r['steps'] / r['cpu_s']:.2f}",
                   f"{r['peak_mb']:.0f}"] for m, r in res["train"].items()]
    ft_rows = [[m, r["mode"], r["steps"], f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}", f"{r['total_wall_s']:.1f}",
                f"< {PAPER_FINETUNE_S:.0f} (H100)" if m == "poco" else "-"] for m, r in res["finetune"].items()]
    fc_rows = [[m, f"{r['median_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['cpu_ms']:.2f}",
                f"{PAPER_FORECAST_MS} (H100)" if m == "poco" else "-"] for m, r in res["forecast"].items()]
    scale_rows = [[r["model"], f"{r['units']:,}", f"{r['train']['wall_s']:.3f}", f"{r['train']['cpu_s']:.3f}",
                   f"{r['train']['peak_mb']:.0f} (+{max(r['train']['delta_mb'], 0):.0f})", f"{r['forecast']['median_ms']:.1f}",
                   f"{r['forecast']['peak_mb']:.0f} (+{max(r['forecast']['delta_mb'], 0):.0f})"] for r in res["scale"]]
    label = {"full": "Full run", "quick": "QUICK MODE (--quick): fewer repetitions, no 80k case",
             "smoke": "SMOKE MODE (--smoke): a test of the script, numbers are meaningless"}[mode]
    doc = "\n".join([
        "# Performance: speed and scale", "",
        f"**{label}.** Generated by `python benchmarks/bench_speed.py {' '.join(sys.argv[1:])}` in {minutes:.0f} min.", "",
        machine_markdown(info, commit), "",
        f"Paper-sized (default) configs; {where}; memory = {mem} (the + figure is "
        "what the measured phase added over the process's memory just before it, i.e. after loading data and "
        "model). CPU-seconds are given next to wall time: the machine was shared with other engineers' tests "
        "and benchmarks while this ran (see the load average), so wall times are inflated and noisy, and "
        f"CPU-seconds estimate the time on an idle machine with {info['threads']} thread(s).", "",
        f"## Training (batch {p.train_batch}, one session of {p.train_units} units, context 48, horizon 16)", "",
        md_table(["model", "parameters", "steps/s (wall)", "steps per CPU-second", "peak memory (MB)"], train_rows), "",
        f"## Finetuning: {p.finetune_steps} steps at batch 1 on a new {p.train_units}-unit session", "",
        "POCO trains only the new session's embeddings (the paper's setting); MLP and NLinear have no "
        "per-session parameters, so they train all weights. `total` adds loading the checkpoint, preparing the "
        "data, the closing validation and test pass.", "",
        md_table(["model", "mode", "steps", "steps wall (s)", "steps CPU (s)", "total wall (s)", "paper (s)"], ft_rows), "",
        f"## Single-window forecast ({p.train_units} units, {p.forecast_reps} calls of `poco_core.analysis.forecast.forecast`)", "",
        "Includes normalising the context frames with the stored preprocessing and the inverse transform.", "",
        md_table(["model", "median (ms)", "p99 (ms)", "CPU per call (ms)", "paper (ms)"], fc_rows), "",
        f"## Scaling with the number of neurons (one training step at batch {p.scale_batch}; one forecast)", "",
        md_table(["model", "neurons", "train step wall (s)", "train step CPU (s)", "train peak MB (+added)",
                  "forecast median (ms)", "forecast peak MB (+added)"], scale_rows), "",
        f"![scaling]({scaling_figure(res['scale'], out / 'figures' / 'performance_scaling.png')})", "",
        "POCO's tokens attend only to 8 latents, so time and memory grow linearly with the number of neurons "
        "(the dotted line); per-unit work is processed in checkpointed slices, which keeps the activation "
        "memory of a training step bounded by the slice size plus the linearly growing embeddings and outputs.", ""])
    out.mkdir(parents=True, exist_ok=True)
    path = out / "performance.md"
    path.write_text(doc)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one measurement in this process
    speed = ap.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true", help="fewer repetitions, no 80k-neuron case")
    speed.add_argument("--smoke", action="store_true", help="seconds; exercises every code path (tests)")
    ap.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda:0...")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: robust on a shared machine)")
    ap.add_argument("--out", default=str(REPO / "docs"), help="folder for performance.md and figures/")
    ap.add_argument("--inline", action="store_true",
                    help="run every case in this process: fast, but peak memory then includes earlier cases")
    args = ap.parse_args()
    if args.case:
        child(json.loads(args.case))
        return
    set_threads(args.threads)
    from poco_core.base.device import resolve_device

    device = str(resolve_device(args.device))
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    p = PROFILES[mode]
    info, commit, t0 = machine_info(device), git_commit(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="poco-speed-") as work:
        res = run_benchmarks(p, device, args.threads, work, args.inline)
    path = write_report(res, p, mode, info, commit, (time.perf_counter() - t0) / 60, Path(args.out), args.inline)
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
