"""precision="auto": bf16 only where a measurement on this machine shows it faster, cached."""
from __future__ import annotations

import json
import time

import pytest
import torch

from poco_core.models import SessionSpec, build_model
from poco_core.models import precision as prec
from poco_core.models.inference import native_bf16, predict


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POCO_CACHE_DIR", str(tmp_path))
    prec.forget()
    yield
    prec.forget()


def _timed(seconds: float, calls: list):
    def run():
        calls.append(1)
        time.sleep(seconds)
    return run


@pytest.mark.parametrize("t32, t16, expected", [(0.004, 0.0005, "bf16"), (0.0005, 0.004, "fp32"), (0.002, 0.002, "fp32")])
def test_the_faster_precision_is_chosen_and_exact_wins_a_tie(t32, t16, expected):
    calls32, calls16 = [], []
    key = ("cpu|test machine", "POCO|units~512")
    assert prec.measured_choice(key, _timed(t32, calls32), _timed(t16, calls16), torch.device("cpu")) == expected
    assert len(calls32) == len(calls16) == prec.MEASURE_PASSES + 1


def test_a_choice_is_measured_once_per_machine_and_shape_class_and_kept_on_disk():
    calls = []
    key = ("cpu|test machine", "POCO|units~512")
    first = prec.measured_choice(key, _timed(0.003, calls), _timed(0.0001, calls), torch.device("cpu"))
    n = len(calls)
    prec.forget()  # a new process: only the file remains
    assert prec.measured_choice(key, _timed(0.003, calls), _timed(0.0001, calls), torch.device("cpu")) == first
    assert len(calls) == n
    stored = json.loads(prec.cache_path().read_text())
    assert stored == {"cpu|test machine": {"POCO|units~512": "bf16"}}
    other = ("cpu|another machine", "POCO|units~512")
    prec.measured_choice(other, _timed(0.0001, calls), _timed(0.003, calls), torch.device("cpu"))
    assert len(calls) > n and json.loads(prec.cache_path().read_text())["cpu|another machine"] == {"POCO|units~512": "fp32"}


def test_shape_classes_round_units_and_windows_to_powers_of_two():
    model = build_model("mlp", [SessionSpec("s", "d", [f"u{i}" for i in range(3)])], context=8, horizon=2)
    a = prec.shape_class(model, [torch.zeros(1, 8, 300)])
    assert a == prec.shape_class(model, [torch.zeros(1, 8, 500)]) != prec.shape_class(model, [torch.zeros(1, 8, 600)])
    assert a != prec.shape_class(model, [torch.zeros(4, 8, 300)])


def test_auto_forecasts_equal_the_measured_precisions_forecasts():
    torch.manual_seed(0)
    n = 20
    model = build_model("poco", [SessionSpec("s", "d", [f"u{i}" for i in range(n)])], context=12, horizon=4,
                        hidden=32, d_model=16).eval()
    x = torch.randn(2, 12, n)
    (auto,) = predict(model, [x], ["s"], "auto")
    cpu = torch.device("cpu")
    if not native_bf16(cpu):
        (exact,) = predict(model, [x], ["s"], "fp32")
        assert torch.equal(auto, exact) and not prec.cache_path().exists()  # nothing to measure
        return
    def never():
        raise AssertionError("the choice was measured again")

    key = (prec.machine_key(cpu), prec.shape_class(model, [x]))
    choice = prec.measured_choice(key, never, never, cpu)  # the choice predict made, from the cache
    (same,) = predict(model, [x], ["s"], choice)
    assert torch.equal(auto, same)


def test_a_close_call_is_not_kept_on_disk():
    """Timings within 20-25% of each other (a busy machine, or no real difference) are measured again."""
    calls = []
    key = ("cpu|test machine", "POCO|units~1024")
    assert prec.measured_choice(key, _timed(0.002, calls), _timed(0.0021, calls), torch.device("cpu")) == "fp32"
    assert not prec.cache_path().exists()
