"""The benchmark scripts run end to end at smoke size and write the documented tables and figures.

Only the structure of the reports is checked, not the numbers (smoke runs train for a few steps).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_script(script: str, *args: str) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def check_pngs(folder: Path, names: list[str]) -> None:
    for name in names:
        png = folder / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


def test_reproduce_smoke_writes_every_section(tmp_path: Path) -> None:
    from poco_core.data.io import save_recording
    from poco_core.data.simulate import simulate_recording

    real = tmp_path / "real.h5"  # stands in for a real recording given on the command line
    save_recording(simulate_recording(n_rois=12, n_frames=400, seed=5, session="fishR", dataset="lab"), real)
    out = tmp_path / "out"
    run_script("reproduce.py", "--smoke", "--seeds", "2", "--models", "copy,nlinear,mlp,poco",
               "--out", str(out), "--work", str(tmp_path / "work"), str(real))

    text = (out / "results.md").read_text()
    assert "SMOKE MODE" in text and "| commit | `" in text and "| cpu |" in text
    for heading in ("## 1. Prediction score, MSE and MAE", "### synthetic cohort", "### lab (1 session)",
                    "## 2. Error by forecast step", "## 3. Score against context length",
                    "## 4. Simulation: multi-session gain against sigma_J", "## 5. Finetuning on a held-out individual",
                    "## 6. Pre-processing: low-pass filter"):
        assert heading in text, heading
    assert "| model | SS score | SS MSE | SS MAE | MS score | MS MSE | MS MAE |" in text
    assert "paper SS / MS (Deisseroth, 512 PCs)" in text  # the paper beside the real recording
    for model in ("copy", "nlinear", "mlp", "poco"):
        assert f"| {model} | " in text
    assert "| pretrained POCO, embeddings |" in text and "| mlp from scratch |" in text
    assert "| sigma_J | SS POCO score | MS POCO score | gain |" in text
    check_pngs(out / "figures", [f"results_{n}.png" for n in ("scores", "per_step", "context", "sigma_j",
                                                                "finetune", "filter")])


def _check_performance(out: Path) -> None:
    text = (out / "performance.md").read_text()
    assert "SMOKE MODE" in text and "| commit | `" in text and "| torch |" in text
    for heading in ("## Training (batch", "## Finetuning:", "## Single-window forecast", "## Scaling with the number"):
        assert heading in text, heading
    for model in ("poco", "mlp", "nlinear"):
        assert f"| {model} | " in text
    assert "| poco | embeddings |" in text  # POCO finetunes only its embeddings
    check_pngs(out / "figures", ["performance_scaling.png"])


def test_bench_speed_smoke_inline(tmp_path: Path) -> None:
    run_script("bench_speed.py", "--smoke", "--inline", "--device", "cpu", "--out", str(tmp_path))
    _check_performance(tmp_path)


@pytest.mark.slow
def test_bench_speed_smoke_child_processes(tmp_path: Path) -> None:
    """The real mode: one child process per case (about 30 interpreter starts)."""
    run_script("bench_speed.py", "--smoke", "--device", "cpu", "--out", str(tmp_path))
    _check_performance(tmp_path)


@pytest.mark.slow
def test_bench_extract_smoke(tmp_path: Path) -> None:
    """The extraction benchmark at toy size, extractor only: every frame written is extracted."""
    import json

    out = tmp_path / "extract.json"
    run_script("bench_extract.py", "--rois", "30", "--size", "96", "--seconds", "2", "--lead", "3", "--no-gui",
               "--json", str(out))
    report = json.loads(out.read_text())["extract"]
    assert report["frames_written"] == 60 and report["frames_extracted"] == 60 and report["dropped"] == 0
    assert {"median_ms", "p99_ms"} <= set(report["register_extract_ms"]) and report["written_to_traces_ms"]["frames"] == 60


def test_bench_models_compare_smoke(tmp_path: Path) -> None:
    """--compare runs each case with both trees (here: this one twice) and records load and CPU time."""
    import json

    out = tmp_path / "rows.jsonl"
    run_script("bench_models.py", "--threads", "1", "--cases", "512", "--runs", "2", "--steps", "1",
               "--compare", str(REPO), "--json-out", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["tree"] for r in rows] == [str(REPO), "this"]
    assert all(r["train_step_cpu_s"] > 0 and "load_start" in r and r["units"] == 512 for r in rows)


def test_bench_gil_prints_eager_and_traced_rows() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_gil.py"), "--units", "16", "--runs", "3"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| fp32 eager | " in proc.stdout and "| fp32 traced | " in proc.stdout
