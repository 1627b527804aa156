"""`poco train/evaluate/finetune/forecast` end to end, JSON output and exit codes."""
from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
from test_train_support import FAST, TINY_POCO, cohort, prepared

import poco_core.cli.main as cli
from poco_core.base.events import CancelToken
from poco_core.cli.common import drive
from poco_core.data.io import save_recording
from poco_core.training.checkpoint import load_checkpoint
from poco_core.training.train import train_events

SETS = [a for k, v in TINY_POCO.items() if k not in ("context", "horizon") for a in ("--set", f"{k}={v}")]
FAST_ARGS = ["--batch-size", "8", "--max-val-windows", "16", "--device", "cpu"]


@pytest.fixture()
def poco(monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("train", "evaluate", "finetune", "forecast"))

    def run(*argv) -> tuple[int, str, str]:
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture()
def files(tmp_path):
    paths = []
    for rec in cohort():
        paths.append(tmp_path / f"{rec.session}.h5")
        save_recording(rec, paths[-1])
    return paths


def test_train_evaluate_finetune_forecast_round_trip(poco, files, tmp_path):
    ckpt = tmp_path / "m.pt"
    code, out, _ = poco("train", files[0], files[1], "--model", "poco", "--steps", 4, "--val-every", 2, "--out", ckpt,
                        "--context", 12, "--horizon", 4, "--block-len", 200, *SETS, *FAST_ARGS, "--json")
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["type"] == "start" and events[-1]["type"] == "done" and events[-1]["checkpoint"] == str(ckpt)

    code, out, _ = poco("evaluate", ckpt, files[0], files[1], "--json", "--out", tmp_path / "table.csv")
    result = json.loads(out)
    assert code == 0 and set(result["sessions"]) == {"fish01", "fish02"}
    assert result["mean"]["score"] == pytest.approx(events[-1]["test"]["score"])
    assert {r["model"] for r in result["table"]} == {"copy", "mean", "smoothed copy", "poco"}
    assert (tmp_path / "table.csv").read_text().startswith("model,dataset,session,score,mean_score,smooth_score,mse,mae")

    ft = tmp_path / "ft.pt"
    code, _, _ = poco("finetune", ckpt, files[2], "--steps", 2, "--val-every", 1, "--out", ft, *FAST_ARGS)
    assert code == 0
    code, out, err = poco("forecast", ft, files[2], "--t", 100, "--t-stop", 104, "--json", "--out", tmp_path / "f.npz")
    fc = json.loads(out)
    assert code == 0 and np.array(fc["z"]).shape == (4, 4, 12) and np.array(fc["values"]).shape == (4, 4, 12)
    saved = np.load(tmp_path / "f.npz")
    assert saved["z"].shape == (4, 4, 12) and float(saved["fs"]) == 5.0
    np.testing.assert_allclose(saved["time_s"], saved["frames"] / 5.0)
    assert f"wrote {tmp_path / 'f.npz'}: 4 forecast(s) x 4 steps x 12 units" in err


def test_bad_input_exits_2_with_a_message(poco, files, tmp_path):
    code, _, err = poco("train", tmp_path / "missing.h5", "--steps", 1, "--out", tmp_path / "m.pt")
    assert code == 2 and "missing.h5" in err
    (tmp_path / "junk.pt").write_bytes(b"junk")
    code, _, err = poco("evaluate", tmp_path / "junk.pt", files[0])
    assert code == 2 and "junk.pt" in err


def test_first_ctrl_c_stops_gracefully_with_exit_130(tmp_path, capsys):
    token = CancelToken()

    def events():
        for e in train_events(prepared(cohort()[:1]), "poco", checkpoint=tmp_path / "m.pt", steps=500, val_every=250,
                              cancel=token, model_config=TINY_POCO, **FAST):
            if e["type"] == "step" and e["step"] == 2:
                os.kill(os.getpid(), signal.SIGINT)  # drive's handler turns it into a cancel request
            yield e

    assert drive(events(), token, as_json=False) == 130
    assert (tmp_path / "m.pt").exists() and "stopping after this step" in capsys.readouterr().err


def test_evaluate_text_names_split_units_and_aligns_long_names(poco, tmp_path):
    """Issue 14: the table says which split and which units, and long session names keep columns aligned."""
    from dataclasses import replace

    long_names = [replace(rec, session=f"a_really_long_session_name_{i}_from_the_rig") for i, rec in enumerate(cohort()[:2])]
    files = [save_recording(rec, tmp_path / f"{rec.session}.h5") for rec in long_names]
    ckpt = tmp_path / "m.pt"
    assert poco("train", *files, "--model", "nlinear", "--steps", 2, "--val-every", 2, "--out", ckpt,
                "--context", 12, "--horizon", 4, "--block-len", 200, *FAST_ARGS)[0] == 0
    code, out, _ = poco("evaluate", ckpt, *files, "--split", "val")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("val split; MSE and MAE in z-scored units")
    table = lines[2:lines.index(next(line for line in lines[2:] if line.startswith("note")))] \
        if any(line.startswith("note") for line in lines) else lines[2:]
    assert len({len(line) for line in table}) == 1  # every row as wide as the header
    assert any("a_really_long_session_name_1_from_the_rig" in line for line in table)


def test_train_cv_folds_prints_each_run_and_keeps_the_choice(poco, files, tmp_path):
    """`poco train --cv-folds 2`: one progress stream over the 4 runs, a line per run, the choice's note."""
    ckpt = tmp_path / "cv.pt"
    run = ("train", files[0], files[1], "--cv-folds", 2, "--steps", 4, "--val-every", 2, "--context", 12, "--horizon", 4,
           "--block-len", 200, *SETS, *FAST_ARGS)
    code, _, err = poco(*run, "--cv-decisive-se", "off", "--out", ckpt)
    assert code == 0, err
    assert err.count("cross-validation run ") == 4 and "run 4/4 (POCO (one stage), fold 1/2)" in err
    assert "cross-validation chose" in err and "saved " + str(ckpt) in err
    assert load_checkpoint(ckpt)["crossval"]["complete"]
    # any difference settles it at Z = 0: the default split's two runs only, and the line saying why
    code, _, err = poco(*run, "--cv-decisive-se", 0, "--out", tmp_path / "settled.pt")
    assert code == 0, err
    assert err.count("cross-validation run ") == 2 and "the default split settles it" in err
    assert load_checkpoint(tmp_path / "settled.pt")["crossval"]["settled_on_default_split"]


def test_cv_decisive_se_defaults_to_the_engines_and_takes_off():
    import inspect

    from poco_core.training.crossval import crossval_events

    parse = cli.build_parser().parse_args
    base = ["train", "data.h5", "--out", "o.pt", "--cv-folds", "4"]
    assert parse(base).cv_decisive_se == inspect.signature(crossval_events).parameters["decisive_se"].default == 2.0
    assert parse([*base, "--cv-decisive-se", "off"]).cv_decisive_se is None
    assert parse([*base, "--cv-decisive-se", "0.5"]).cv_decisive_se == 0.5
    with pytest.raises(SystemExit):
        parse([*base, "--cv-decisive-se", "-1"])


@pytest.mark.parametrize("argv, message", [
    (["--cv-folds", "1"], "at least 2 folds"),
    (["--cv-folds", "2", "--model", "nlinear"], "no FiLM"),
    (["--cv-folds", "2", "--resume", "old.pt"], "cannot --resume"),
])
def test_train_cv_folds_refuses_before_loading(poco, files, tmp_path, argv, message):
    code, _, err = poco("train", files[0], "--out", tmp_path / "m.pt", *argv)
    assert code == 2 and message in err and not (tmp_path / "m.pt").exists()
