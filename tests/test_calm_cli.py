"""`poco train --model calm --set preset=tiny` end to end: both stages with their events, then
`poco evaluate` (Pearson beside the score), `poco forecast` and `poco finetune` on its checkpoint."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_cli_engine import FAST_ARGS, files, poco  # noqa: F401  (fixtures)

from poco_core.training.restore import load_model

STAGES = ["--set", "preset=tiny", "--set", "nq_steps=6", "--context", 12, "--horizon", 4, "--block-len", 200]


@pytest.mark.slow
def test_calm_train_evaluate_forecast_finetune(poco, files, tmp_path):  # noqa: F811
    ckpt = tmp_path / "calm.pt"
    code, out, _ = poco("train", files[0], files[1], "--model", "calm", "--steps", 12, "--val-every", 4, "--out", ckpt,
                        *STAGES, *FAST_ARGS, "--json")
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    stages = [(e["stage"], e["step"], e["total_steps"]) for e in events if e["type"] == "stage"]
    assert stages == [("nq", 1, 6), ("dat", 7, 6)]
    steps = {e["step"]: e for e in events if e["type"] == "step"}
    assert {"rec_r", "perplexity", "codes_used", "tau"} <= set(steps[6]) and {"ce", "ce_ss", "token_acc"} <= set(steps[7])
    (codebook,) = [e for e in events if e["type"] == "codebook"]
    assert np.array(codebook["prototypes"]).shape == (32, 4) and len(codebook["usage"]) == 32
    vals = [e for e in events if e["type"] == "validation"]
    assert vals[0]["val_score"] == 0.0  # quantizer stage: the copy forecast
    done = events[-1]
    assert done["best_step"] > 6  # best tracking restarted with the transformer stage
    assert math.isfinite(done["test"]["pearson"])

    code, out, _ = poco("evaluate", ckpt, files[0], files[1], "--json")
    result = json.loads(out)
    assert code == 0 and result["mean"]["pearson"] == pytest.approx(done["test"]["pearson"])
    copy_rows = [r for r in result["table"] if r["model"] == "copy"]
    assert copy_rows and all(r["pearson"] is None or math.isnan(r["pearson"]) for r in copy_rows)

    code, out, _ = poco("forecast", ckpt, files[0], "--t", 100, "--t-stop", 104, "--json")
    assert code == 0 and np.array(json.loads(out)["z"]).shape == (4, 4, 12)

    ft = tmp_path / "ft.pt"
    code, out, _ = poco("finetune", ckpt, files[2], "--steps", 2, "--val-every", 1, "--out", ft, *FAST_ARGS, "--json",
                        "--set", "temperature=0.5", "--set", "n_samples=2")
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [e["stage"] for e in events if e["type"] == "stage"] == ["adapt"]
    config = load_model(ft).config
    assert (config.temperature, config.n_samples) == (0.5, 2)  # the rollout settings travel with the checkpoint
    code, _, err = poco("finetune", ckpt, files[2], "--steps", 2, "--out", tmp_path / "x.pt", "--set", "d_model=64")
    assert code != 0 and "cannot change after training" in err
