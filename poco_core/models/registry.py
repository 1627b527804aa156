"""Name -> model class registry and the checkpoint-safe dict form of a model."""
from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, Callable, TypeVar

from poco_core.base.errors import PocoError
from poco_core.models.base import BaseForecaster, SessionSpec

_REGISTRY: dict[str, type[BaseForecaster]] = {}
M = TypeVar("M", bound=type[BaseForecaster])


def register(name: str) -> Callable[[M], M]:
    """Class decorator: make a model buildable by ``name``."""

    def deco(cls: M) -> M:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available_models() -> list[str]:
    return list(_REGISTRY)


def model_class(name: str) -> type[BaseForecaster]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise PocoError(f"unknown model {name!r}; available: {', '.join(_REGISTRY)}") from None


def build_model(name: str, sessions: list[SessionSpec], **config_overrides: Any) -> BaseForecaster:
    """A freshly initialised model; ``config_overrides`` are fields of the model's config dataclass."""
    cls = model_class(name)
    known = {f.name for f in fields(cls.config_class)}
    unknown = sorted(set(config_overrides) - known)
    if unknown:
        raise PocoError(f"model {name!r} has no config field(s) {unknown}; fields: {sorted(known)}")
    return cls(cls.config_class(**config_overrides), list(sessions))


def model_to_dict(model: BaseForecaster) -> dict[str, Any]:
    """Plain dict (str/int/float/bool/None/list/dict/tensors) loadable with ``weights_only=True``."""
    return {
        "name": model.name,
        "config": asdict(model.config),
        "sessions": [s.to_dict() for s in model.sessions],
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }


def model_from_dict(d: dict[str, Any]) -> BaseForecaster:
    """Rebuild a model from ``model_to_dict`` output (config + sessions give the exact shapes).
    Config fields the stored dict lacks take the class's ``LEGACY`` values (what it computed)."""
    try:
        config = {**model_class(d["name"]).config_class.LEGACY, **d["config"]}
        model = build_model(d["name"], [SessionSpec.from_dict(s) for s in d["sessions"]], **config)
        model.load_state_dict(d["state_dict"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise PocoError(f"stored model could not be rebuilt: {e}") from e
    return model
