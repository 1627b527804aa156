"""Forecasting models: POCO and the paper's baselines behind one registry.

``build_model(name, sessions, **overrides)``; names are listed by ``available_models()``.
"""
from .base import BaseConfig, BaseForecaster, SessionSpec, UnivariateForecaster, mse_loss
from .registry import available_models, build_model, model_class, model_from_dict, model_to_dict, register

# importing the modules registers their models (order = order of available_models())
from . import (  # noqa: E402,F401  isort: skip
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
    "mse_loss",
    "register",
]
