"""POCO's defining properties and the model contract (registry, sessions, save/rebuild)."""
from __future__ import annotations

import pytest
import torch

from poco_core.base.errors import PocoError
from poco_core.models import (
    SessionSpec,
    available_models,
    build_model,
    model_from_dict,
    model_to_dict,
)

# small widths keep these tests fast; defaults only where the test is about defaults
SMALL = dict(hidden=32, d_model=16, cross_head_dim=8, self_attn_heads=2, self_attn_head_dim=8)
_ENCODER = dict(d_model=32, cross_head_dim=16, self_attn_heads=2, self_attn_head_dim=16)
SMALL_CONFIGS: dict[str, dict] = {  # per registered model; also used by test_models_training
    "copy": {},
    "nlinear": {},
    "dlinear": {},
    "mlp": dict(hidden=64),
    "poco": dict(hidden=64, **_ENCODER),
    "poyo": _ENCODER,
    "mlp_transformer": dict(hidden=64, d_model=32, heads=4, ff_dim=64),
    "texfilter": dict(embed_size=16, hidden=64),
    "tsmixer": {},
    "plrnn": dict(latent=32),
    "ar_transformer": dict(d_model=32, layers=2, heads=4),
    "netformer": {},
    "moderntcn": dict(d_model=16),
    "calm": dict(preset="tiny"),
    "curbd": {},  # fitted by RLS, not gradients: tests/test_curbd.py
    "pinning": {},
}


def spec(name: str, n: int, dataset: str = "ds") -> SessionSpec:
    return SessionSpec(name, dataset, [f"{name}_u{i}" for i in range(n)])


def randomise(model: torch.nn.Module, seed: int = 0, scale: float = 0.2) -> None:
    """Give every parameter random values so zero-initialised FiLM maps do not hide bugs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)


def test_registry_names() -> None:
    assert set(available_models()) >= {"copy", "nlinear", "mlp", "poco"}
    with pytest.raises(PocoError):
        build_model("nope", [spec("a", 3)])
    with pytest.raises(PocoError):
        build_model("poco", [spec("a", 3)], no_such_field=1)


def test_param_count_defaults() -> None:
    model = build_model("poco", [spec("a", 200)])
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - 1.545e6) / 1.545e6 < 0.02, n
    bigger = build_model("poco", [spec("a", 201)])
    assert sum(p.numel() for p in bigger.parameters()) - n == 128


def test_poco_init_outputs_constant_bias() -> None:
    model = build_model("poco", [spec("a", 5), spec("b", 9)], **SMALL).eval()
    b_out = model.head.mlp.w_out.bias.detach()
    xs = [torch.randn(3, 48, 5) * 5, torch.randn(2, 48, 9)]
    for y in model(xs, ["a", "b"]):
        torch.testing.assert_close(y, b_out[None, :, None].expand_as(y))


def test_permuting_units_permutes_output() -> None:
    model = build_model("poco", [spec("a", 6)], **SMALL)
    randomise(model)
    model.eval()
    perm = torch.randperm(6)
    ids = model.sessions[0].unit_ids
    permuted = build_model("poco", [SessionSpec("a", "ds", [ids[i] for i in perm])], **SMALL).eval()
    state = model.state_dict()
    state["embeddings.unit.s0"] = state["embeddings.unit.s0"][perm]
    permuted.load_state_dict(state)
    x = torch.randn(4, 48, 6)
    y = model([x], ["a"])[0]
    y_perm = permuted([x[:, :, perm]], ["a"])[0]
    torch.testing.assert_close(y_perm, y[:, :, perm], rtol=1e-4, atol=1e-5)


def test_mixed_session_sizes_share_weights() -> None:
    model = build_model("poco", [spec("small", 7), spec("big", 700)], **SMALL)
    randomise(model)
    model.eval()
    xs = [torch.randn(2, 48, 7), torch.randn(3, 48, 700)]
    ys = model(xs, ["small", "big"])
    assert [tuple(y.shape) for y in ys] == [(2, 16, 7), (3, 16, 700)]
    # same result as one session at a time: sessions do not interact within a batch
    torch.testing.assert_close(model([xs[1]], ["big"])[0], ys[1])


@pytest.mark.parametrize("context,horizon", [(12, 4), (4, 2), (50, 7)])
def test_other_context_lengths(context: int, horizon: int) -> None:
    model = build_model("poco", [spec("a", 5)], context=context, horizon=horizon, **SMALL)
    randomise(model)
    y = model([torch.randn(2, context, 5)], ["a"])[0]
    assert y.shape == (2, horizon, 5)
    model.loss([torch.randn(2, context + horizon, 5)], ["a"]).backward()


def test_small_configs_cover_every_model() -> None:
    assert set(SMALL_CONFIGS) == set(available_models())


@pytest.mark.parametrize("name", sorted(SMALL_CONFIGS))
def test_save_rebuild_identical(name: str) -> None:
    model = build_model(name, [spec("a", 4), spec("b", 3, "other")], **SMALL_CONFIGS[name])
    randomise(model, scale=0.05)
    model.eval()
    rebuilt = model_from_dict(_roundtrip(model_to_dict(model))).eval()
    xs = [torch.randn(2, 48, 4), torch.randn(2, 48, 3)]
    with torch.no_grad():
        for a, b in zip(model(xs, ["a", "b"]), rebuilt(xs, ["a", "b"])):
            assert a.shape == (2, 16, a.shape[2]) and torch.isfinite(a).all()
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def _roundtrip(d: dict) -> dict:
    """Through torch.save / torch.load(weights_only=True), as checkpoints do."""
    import io

    buf = io.BytesIO()
    torch.save(d, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("name", sorted(SMALL_CONFIGS))
def test_add_session_leaves_others_unchanged(name: str) -> None:
    model = build_model(name, [spec("a", 4)], **SMALL_CONFIGS[name])
    randomise(model, scale=0.05)
    model.eval()
    x = torch.randn(2, 48, 4)
    with torch.no_grad():
        before = model([x], ["a"])[0]
        model.add_session(spec("new", 6))
        torch.testing.assert_close(model([x], ["a"])[0], before, rtol=0, atol=0)
        assert model([torch.randn(1, 48, 6)], ["new"])[0].shape == (1, 16, 6)


def test_add_session_embeddings() -> None:
    model = build_model("poco", [spec("a", 4)], **SMALL)
    x = torch.randn(2, 48, 4)
    model.add_session(spec("new", 6))
    emb = model.unit_embeddings("new")
    assert emb.shape == (6, 16) and 0.005 < emb.std().item() < 0.05  # fresh N(0, 0.02^2)
    assert model.unit_embeddings("a").shape == (4, 16)
    with pytest.raises(PocoError):
        model.add_session(spec("new", 2))
    with pytest.raises(PocoError):
        model([x], ["unknown"])


def test_parameter_groups_partition() -> None:
    model = build_model("poco", [spec("a", 4)], **SMALL)
    groups = model.parameter_groups()
    ids = [id(p) for g in groups.values() for p in g]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert sum(p.numel() for p in groups["embeddings"]) == 4 * 16 + 16
    one = model.parameter_groups(session="a")
    assert [p.shape for p in one["embeddings"]] == [(4, 16), (16,)]
    tsmixer = build_model("tsmixer", [spec("a", 4), spec("b", 5)])
    only_b = tsmixer.parameter_groups(session="b")
    assert only_b["embeddings"] and all(p.shape[-1] in (5, 64) for p in only_b["embeddings"])
    assert len(only_b["rest"]) == len(tsmixer.parameter_groups()["rest"])
    assert build_model("copy", [spec("a", 4)]).parameter_groups() == {"embeddings": [], "mlp": [], "rest": []}
    with pytest.raises(NotImplementedError):
        build_model("mlp", [spec("a", 4)]).unit_embeddings("a")


def test_dataset_embedding_only_with_several_datasets() -> None:
    one = build_model("poco", [spec("a", 4), spec("b", 4)], **SMALL)
    two = build_model("poco", [spec("a", 4), spec("b", 4, "other")], **SMALL)
    assert one.config.dataset_embedding is False and len(one.embeddings.dataset) == 0
    assert two.config.dataset_embedding is True and len(two.embeddings.dataset) == 2


def test_hidden_cache_and_chunking_are_exact() -> None:
    model = build_model("poco", [spec("a", 50)], **SMALL)
    randomise(model)
    model.eval()
    x = torch.randn(3, 48, 50)
    y = model([x], ["a"])[0]
    torch.testing.assert_close(model([x], ["a"], hidden=model.hidden_states([x]))[0], y)
    model.config.chunk_elements = model.config.slice_elements = 20  # slices of 6 units at batch 3
    torch.testing.assert_close(model([x], ["a"])[0], y, rtol=1e-5, atol=1e-6)


def test_chunked_backward_matches_unchunked() -> None:
    torch.manual_seed(0)
    model = build_model("poco", [spec("a", 30)], **SMALL)
    randomise(model)
    model.eval()  # no dropout so both passes see the same function
    w = torch.randn(2, 64, 30)
    model.loss([w], ["a"]).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.config.chunk_elements, model.config.slice_elements = 16, 10  # 5-unit slices, checkpointed encoder
    model.loss([w], ["a"]).backward()
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("heads", [1, 2])
def test_latent_space_decoder_is_attention_then_feed_forward(heads: int) -> None:
    """decode() computes dec_atn then dec_ffn (with residuals) through the 8 latents; the modules'
    own forward passes are the plain function. Queries far from zero mean test the centring."""
    torch.manual_seed(0)
    model = build_model("poco", [spec("a", 9)], cross_heads=heads, **SMALL)
    randomise(model)
    model.eval()
    enc = model.encoder
    queries = (torch.randn(9, 16) + 3.0).requires_grad_()
    latents = torch.randn(4, 8, 16, requires_grad=True)
    fast = enc.decode(latents, enc.query_terms(queries))
    out = queries + enc.dec_atn(queries, latents, (enc.query_cos, enc.query_sin), (enc.lat_x_cos, enc.lat_x_sin))
    plain = out + enc.dec_ffn(out)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(plain)
    params = [queries, latents, *enc.dec_atn.parameters(), *enc.dec_ffn.parameters()]
    for a, b in zip(torch.autograd.grad(fast, params, g, allow_unused=True),
                    torch.autograd.grad(plain, params, g, allow_unused=True)):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_forecast_query_cache_follows_the_weights() -> None:
    """Eval forecasts reuse the decoder's per-unit terms until a weight they depend on changes."""
    model = build_model("poco", [spec("a", 6)], **SMALL)
    randomise(model)
    model.eval()
    x = torch.randn(2, 48, 6)

    def exact() -> torch.Tensor:  # with autograd on, nothing is cached
        return model([x], ["a"])[0].detach()

    with torch.inference_mode():
        first = model([x], ["a"])[0]
        torch.testing.assert_close(model([x], ["a"])[0], first)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model([x], ["a"])  # bf16 terms must not be kept for fp32 forecasts
    with torch.no_grad():
        torch.testing.assert_close(model([x], ["a"])[0], first)
    for p in (model.embeddings.unit["s0"], model.encoder.dec_ffn.up.weight, model.encoder.dec_atn.to_q.weight):
        with torch.no_grad():
            p.mul_(1.5)
            cached = model([x], ["a"])[0]
        torch.testing.assert_close(cached, exact(), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(cached, first)
    other = build_model("poco", [spec("a", 6)], **SMALL)
    randomise(other, seed=1)
    model.load_state_dict(other.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model([x], ["a"])[0], exact(), rtol=1e-5, atol=1e-6)


def test_copy_repeats_last_frame() -> None:
    model = build_model("copy", [spec("a", 3)])
    x = torch.randn(2, 48, 3)
    torch.testing.assert_close(model([x], ["a"])[0], x[:, -1:].expand(2, 16, 3))


def test_poco_keeps_each_sessions_initial_unit_rows() -> None:
    """The unit rows as drawn are saved with the weights (what an analysis takes away to see what training
    learned), a session added later keeps its own draw, and a model saved before they were kept still loads."""
    model = build_model("poco", [spec("a", 5)], **SMALL)
    drawn = model.unit_embeddings("a").clone()
    with torch.no_grad():
        model.embeddings.unit[model.session_key("a")].add_(1.0)
    model.add_session(spec("b", 3))
    back = model_from_dict(model_to_dict(model))
    assert torch.equal(back.initial_unit_embeddings("a"), drawn)
    torch.testing.assert_close(back.unit_embeddings("a") - back.initial_unit_embeddings("a"), torch.ones(5, 16))
    assert torch.equal(back.initial_unit_embeddings("b"), model.unit_embeddings("b"))
    old = model_to_dict(model)
    old["state_dict"] = {k: v for k, v in old["state_dict"].items() if ".initial." not in k}
    legacy = model_from_dict(old)
    assert legacy.initial_unit_embeddings("a") is None and torch.equal(legacy.unit_embeddings("a"), drawn + 1.0)
    assert build_model("mlp", [spec("a", 5)]).initial_unit_embeddings("a") is None
