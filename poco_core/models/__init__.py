"""Forecasting models: POCO and the paper's baselines behind one registry.

- ``build_model(name, sessions: list[SessionSpec], **config_overrides)``; ``available_models()``.
- ``model(xs, sessions)``: xs a list of (B_i, C, N_i) tensors, one per session id -> list of
  (B_i, P, N_i). ``model.loss(windows, sessions)`` takes (B_i, C+P, N_i) windows; step-wise models
  (plrnn, ar_transformer, netformer) train on all C+P-1 one-step targets.
- ``model.add_session(spec)`` adds fresh per-session parameters; ``parameter_groups(session=None)``
  gives "embeddings" / "mlp" / "rest". ``copy`` has no parameters: all three lists are empty and
  its loss has no gradient, so trainers must skip the optimiser for it.
- POCO family (poco, poyo): ``unit_embeddings(session)``; poco also ``hidden_states(xs)`` and
  ``forward(xs, sessions, hidden=...)`` to reuse the encoder-independent MLP hidden layer.
- ``model_to_dict`` / ``model_from_dict``: name, config, sessions, state_dict; loadable with
  ``torch.load(weights_only=True)``.
"""
from poco_core.models.base import (
    BaseConfig,
    BaseForecaster,
    SessionSpec,
    UnivariateForecaster,
    dataset_mse_sum,
    mse_loss,
)
from poco_core.models.registry import (
    available_models,
    build_model,
    model_class,
    model_from_dict,
    model_to_dict,
    register,
)

# importing the modules registers their models (order = order of available_models())
from poco_core.models import (  # noqa: E402,F401  isort: skip
    linear,
    mlp,
    poco,
    texfilter,
    tsmixer,
    plrnn,
    ar_transformer,
    netformer,
    moderntcn,
    poyo,
    mlp_transformer,
    calm,
    curbd,
)

__all__ = [
    "BaseConfig",
    "BaseForecaster",
    "SessionSpec",
    "UnivariateForecaster",
    "available_models",
    "build_model",
    "model_class",
    "model_from_dict",
    "model_to_dict",
    "dataset_mse_sum",
    "mse_loss",
    "register",
]
