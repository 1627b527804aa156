"""One set of training/finetuning defaults (issue 14): the API, the CLI and job specs read
poco_core/training/defaults.py, so the same action has the same defaults everywhere."""
import inspect

import pytest

from poco_core.cli.main import build_parser
from poco_core.training.defaults import FINETUNE_DEFAULTS, TRAIN_DEFAULTS
from poco_core.training.finetune import finetune
from poco_core.training.jobs import JobSpec
from poco_core.training.loop import LoopOptions
from poco_core.training.train import train

KEYS = ("steps", "lr", "batch_size", "val_every", "max_val_windows", "embedding_lr_scale")


def test_defaults_hold_every_key():
    assert set(TRAIN_DEFAULTS) == set(FINETUNE_DEFAULTS) == set(KEYS)


@pytest.mark.parametrize("kind,defaults", [("train", TRAIN_DEFAULTS), ("finetune", FINETUNE_DEFAULTS)])
def test_cli_and_jobspec_use_the_defaults(kind, defaults):
    extra = ["x.pt"] if kind == "finetune" else []
    args = build_parser().parse_args([kind, *extra, "data.h5", "--out", "o.pt"])
    assert {k: getattr(args, k) for k in KEYS} == defaults
    spec = JobSpec(kind, [], "o.pt", init_checkpoint="x.pt" if kind == "finetune" else None)
    assert {k: getattr(spec, k) for k in ("steps", "lr", "batch_size", "val_every")} == {
        k: defaults[k] for k in ("steps", "lr", "batch_size", "val_every")}


def test_python_api_uses_the_defaults():
    assert inspect.signature(train).parameters["steps"].default == TRAIN_DEFAULTS["steps"]
    assert inspect.signature(finetune).parameters["steps"].default == FINETUNE_DEFAULTS["steps"]
    opts = LoopOptions()
    assert {k: getattr(opts, k) for k in KEYS} == TRAIN_DEFAULTS
