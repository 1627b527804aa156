"""Helpers shared by the benchmark scripts: machine description, commit, threads, Markdown tables
and figures, so the reports describe their setting the same way, and the JSONL caches of runs."""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python benchmarks/x.py` from a fresh clone without installing
    sys.path.insert(0, str(REPO))


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSONL cache (none when it does not exist yet)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_jsonl(path: Path, row: dict) -> None:
    """Print one run's row and append it to the cache, so an interrupted batch resumes where it was."""
    print(json.dumps(row), flush=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def runs_parser(doc: str, datasets: str, max_steps: int, out: str) -> argparse.ArgumentParser:
    """The arguments every multi-run benchmark takes: what to run, the seeds, the step cap, the JSONL
    cache the runs go to, and ``--render`` (print the tables of a cache and exit)."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--datasets", default=datasets)
    p.add_argument("--seeds", default="0")
    p.add_argument("--max-steps", type=int, default=max_steps)
    p.add_argument("--out", type=Path, default=Path(out))
    p.add_argument("--render", type=Path, default=None, help="print the tables of this JSONL cache and exit")
    return p


def set_threads(threads: int) -> None:
    """Pin torch (and BLAS via the env, for child processes) to `threads` intra-op threads.

    On a machine shared with other jobs, oversubscribed OpenMP threads spin and run many times
    slower than a single thread, so the scripts default to 1."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def git_commit() -> str:
    """HEAD's hash, marked `+dirty` when the working tree differs (the lead commits later)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()

    head = git("rev-parse", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """What the numbers were measured on, including how busy the machine was."""
    import torch

    from poco_core.models.precision import cpu_model

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(_ram_gib(), 1),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "device": device,
        "load_avg_1m_at_start": round(os.getloadavg()[0], 1),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def machine_markdown(info: dict[str, Any], commit: str) -> str:
    rows = [("commit", f"`{commit}`")] + [(k, str(v)) for k, v in info.items()]
    return md_table(["", ""], rows)


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def spread(values: Sequence[float], digits: int = 3) -> str:
    """'mean ± sd' over seeds (sd with ddof 1); just the value for one seed; '-' for none."""
    vals = [v for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{np.mean(vals):.{digits}f} ± {np.std(vals, ddof=1):.{digits}f}"


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def save_figure(fig, path: Path) -> str:
    """Write the PNG and return its path relative to the Markdown file's folder (figures/x.png)."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"{path.parent.name}/{path.name}"
