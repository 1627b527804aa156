"""Progress with an end in sight (issue 14): step events carry elapsed/ETA, the CLI shows them."""
from poco_core.base.events import CancelToken
from poco_core.cli.common import drive


def events(total=100):
    yield {"type": "start", "kind": "train", "total_steps": total, "start_step": 0, "sessions": ["s"], "device": "cpu"}
    for step in range(1, total + 1):
        yield {"type": "step", "step": step, "loss": 1.0, "lr": 1e-3, "steps_per_s": 2.0, "elapsed_s": step / 2.0,
               "eta_s": (total - step) / 2.0}
    yield {"type": "done", "best_step": total, "best_val_mse": 0.5, "test": {}, "checkpoint": "m.pt", "cancelled": False}


def test_without_a_terminal_progress_lines_come_every_30_s(capsys):
    assert drive(events(), CancelToken(), as_json=False) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
    assert lines == ["step 60/100 (60.0%), 2.00 steps/s, elapsed 30 s, ETA 20 s"]


def test_step_events_of_a_run_carry_elapsed_and_eta(tmp_path):
    from test_train_support import FAST, cohort, prepared

    from poco_core.training.train import train_events

    steps = [e for e in train_events(prepared(cohort()[:1]), "nlinear", checkpoint=tmp_path / "m.pt", steps=3,
                                     val_every=3, context=12, horizon=4, **FAST) if e["type"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3] and steps[-1]["eta_s"] == 0.0
    assert all(e["elapsed_s"] > 0 and e["eta_s"] >= 0 for e in steps)
    assert steps[0]["eta_s"] > steps[1]["eta_s"] or steps[0]["eta_s"] > 0
