"""Forecasting precision: bf16 copies stay close to fp32 and follow the model's weights."""
from __future__ import annotations

import copy

import pytest
import torch

from poco_core.base.errors import PocoError
from poco_core.models import SessionSpec, build_model
from poco_core.models.inference import (
    inference_copy,
    native_bf16,
    predict,
    resolve_precision,
)
from poco_core.models import traced

C, P, N = 12, 4, 30


def _poco() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("poco", [SessionSpec("s", "d", [f"u{i}" for i in range(N)])], context=C, horizon=P,
                        hidden=64, d_model=32)
    with torch.no_grad():  # non-zero FiLM, so the encoder matters
        for lin in (model.head.alpha, model.head.beta):
            lin.weight.normal_(0, 0.2)
    return model


def _window(batch: int = 3) -> torch.Tensor:
    return torch.randn(batch, C, N, generator=torch.Generator().manual_seed(1))


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(PocoError, match="fp16.*auto, fp32, bf16"):
        resolve_precision("fp16", torch.device("cpu"))


def test_auto_is_bf16_exactly_where_it_is_native():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == (torch.bfloat16 if native_bf16(cpu) else torch.float32)
    assert resolve_precision("fp32", cpu) == torch.float32 and resolve_precision("bf16", cpu) == torch.bfloat16
    assert not native_bf16(torch.device("meta"))


def test_fp32_is_the_model_itself_and_bf16_is_close():
    model, x = _poco().eval(), _window()
    with torch.no_grad():
        (ref,) = model([x], ["s"])
    (exact,) = predict(model, [x], ["s"], "fp32")
    (low,) = predict(model, [x], ["s"], "bf16")
    assert torch.equal(exact, ref)
    assert low.dtype == torch.float32 and low.shape == (3, P, N)
    rel = ((low - ref).norm() / ref.norm()).item()
    assert 0 < rel < 0.02  # bf16 really ran, and stayed within ~1% of fp32


def test_the_bf16_copy_is_reused_until_the_weights_change():
    model = _poco()
    first = inference_copy(model, torch.bfloat16)
    assert inference_copy(model, torch.bfloat16) is first
    assert next(first.parameters()).dtype == torch.bfloat16 and next(model.parameters()).dtype == torch.float32
    before = predict(model, [_window()], ["s"], "bf16")[0]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.loss([torch.randn(4, C + P, N)], ["s"]).backward()
    opt.step()  # in place: the copy must be remade
    second = inference_copy(model, torch.bfloat16)
    assert second is not first
    with torch.no_grad():
        (ref,) = model.eval()([_window()], ["s"])
    after = predict(model, [_window()], ["s"], "bf16")[0]
    assert ((after - ref).norm() / ref.norm()).item() < 0.02 < ((before - ref).norm() / ref.norm()).item()
    model.add_session(SessionSpec("new", "d", ["a", "b"]))  # new parameters: a copy that knows the session
    (new,) = predict(model, [torch.randn(1, C, 2)], ["new"], "bf16")
    assert new.shape == (1, P, 2)


def test_a_repeated_forecast_runs_a_trace_that_equals_the_eager_pass():
    model, x = _poco().eval(), _window()
    with torch.no_grad():
        (ref,) = model([x], ["s"])
    outs = [predict(model, [x], ["s"], "fp32")[0] for _ in range(traced.TRACE_AFTER + 2)]
    assert len(traced.traces(model)) == 1  # made on the call after TRACE_AFTER eager ones
    for out in outs:
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    predict(model, [_window(batch=2)], ["s"], "fp32")  # another shape: eager until it repeats
    assert len(traced.traces(model)) == 1


def test_the_trace_follows_the_weights_and_skips_untraceable_models():
    model, x = _poco(), _window()
    for _ in range(traced.TRACE_AFTER + 1):
        predict(model, [x], ["s"], "fp32")
    (first,) = traced.traces(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train().loss([torch.randn(4, C + P, N)], ["s"]).backward()
    opt.step()
    with torch.no_grad():
        (ref,) = model.eval()([x], ["s"])
    outs = [predict(model, [x], ["s"], "fp32")[0] for _ in range(traced.TRACE_AFTER + 2)]
    for out in outs:  # eager again, then a new trace of the new weights
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    assert traced.traces(model) and traced.traces(model)[0] is not first
    mlp = build_model("mlp", [SessionSpec("s", "d", [f"u{i}" for i in range(N)])], context=C, horizon=P)
    for _ in range(traced.TRACE_AFTER + 2):
        predict(mlp, [x], ["s"], "fp32")
    assert not mlp.traceable and traced.traces(mlp) == []
    assert traced.traces(copy.deepcopy(model)) == []  # a copy (the bf16 one, say) starts without traces


def test_a_trace_that_fails_leaves_the_call_eager(monkeypatch):
    model, x = _poco().eval(), _window()

    def broken(*args, **kwargs):
        raise RuntimeError("tracing not available")

    monkeypatch.setattr(torch.jit, "trace", broken)
    with torch.no_grad():
        (ref,) = model([x], ["s"])
    for _ in range(traced.TRACE_AFTER + 3):
        assert torch.equal(predict(model, [x], ["s"], "fp32")[0], ref)
    assert traced.traces(model) == []
