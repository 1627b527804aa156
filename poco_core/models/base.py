"""The contract every forecaster follows (see docs/ARCHITECTURE.md, "Model contract").

A model is fully described by its registry name, its config dataclass and the ordered
list of sessions it knows; per-session parameters are keyed by the session's position
(``s0``, ``s1``, ...) because session ids may contain characters that module names forbid.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from poco_core.base.errors import PocoError


@dataclass
class SessionSpec:
    """A session as a model sees it: its id, its dataset and its unit (ROI or PC) ids in column order."""

    session: str
    dataset: str
    unit_ids: list[str] = field(default_factory=list)

    @property
    def n_units(self) -> int:
        return len(self.unit_ids)

    def to_dict(self) -> dict[str, Any]:
        return {"session": self.session, "dataset": self.dataset, "unit_ids": list(self.unit_ids)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SessionSpec":
        return cls(str(d["session"]), str(d["dataset"]), [str(u) for u in d["unit_ids"]])


@dataclass
class BaseConfig:
    """Fields every model has; each model subclasses this with its own defaults."""

    context: int = 48
    horizon: int = 16

    # values for fields a stored config lacks (it was written before they existed): what the
    # model computed then, so old checkpoints keep computing it (new models get the defaults)
    LEGACY: ClassVar[dict[str, Any]] = {}
    # fields that only change how forecasts are made, not the parameters' shapes or meaning,
    # so they may be set on a trained model (finetuning does: `set_runtime_config`)
    RUNTIME: ClassVar[tuple[str, ...]] = ()


def mse_loss(preds: list[Tensor], targets: list[Tensor]) -> Tensor:
    """MSE pooled over every element of every session (not a mean of per-session means)."""
    sq = sum(((p - t) ** 2).sum() for p, t in zip(preds, targets))
    n = sum(t.numel() for t in targets)
    return sq / max(n, 1)


def dataset_mse_sum(preds: list[Tensor], targets: list[Tensor], datasets: list[str]) -> Tensor:
    """The reference's multi-dataset loss: one pooled MSE per dataset (over its sessions' elements),
    summed over datasets, so a dataset's weight does not grow with its unit count."""
    groups: dict[str, list[int]] = {}
    for i, ds in enumerate(datasets):
        groups.setdefault(ds, []).append(i)
    return sum(mse_loss([preds[i] for i in g], [targets[i] for i in g]) for g in groups.values())


def tensors_key(tensors) -> tuple:
    """Changes whenever one of ``tensors`` is replaced or modified in place (training, finetuning)."""
    # inference tensors keep no version counter (and can only change inside inference mode)
    return tuple((t.data_ptr(), -1 if t.is_inference() else t._version) for t in tensors)


def over_unit_chunks(fn: Callable[[slice], Tensor], n_units: int, chunk: int, piece: int | None = None) -> Tensor:
    """``fn`` over all units when there are at most ``chunk``, else over consecutive slices of
    ``piece`` units (default ``chunk``), concatenated along dim 1.

    Per-unit work (B x N x hidden activations) dominates memory for large N; with autograd on,
    each slice is checkpointed so only one slice's activations are alive at a time.
    """
    if n_units <= chunk:
        return fn(slice(0, n_units))
    piece = piece or chunk
    outs = []
    for start in range(0, n_units, piece):
        sl = slice(start, min(start + piece, n_units))
        if torch.is_grad_enabled():
            outs.append(checkpoint(fn, sl, use_reentrant=False))
        else:
            outs.append(fn(sl))
    return torch.cat(outs, dim=1)


class BaseForecaster(nn.Module):
    """Base class: session bookkeeping, default loss and parameter groups.

    Subclasses set ``name`` and ``config_class``, implement ``forward`` and, when they
    hold per-session parameters, ``_init_session`` (called once per session in order).
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[BaseConfig]] = BaseConfig
    traceable: ClassVar[bool] = False  # forecasts may be traced into TorchScript (models/traced.py)

    def __init__(self, config: BaseConfig, sessions: list[SessionSpec]):
        super().__init__()
        self.config = config
        self.sessions: list[SessionSpec] = []
        self._index: dict[str, int] = {}
        self.per_session = nn.ModuleDict()  # per-session maps of baselines, keyed s0, s1, ...
        self._build(sessions)
        for spec in sessions:
            self.add_session(spec)

    # -- hooks -------------------------------------------------------------------
    def _build(self, sessions: list[SessionSpec]) -> None:
        """Create the shared (session-independent) modules; resolve ``None`` config fields here."""

    def _init_session(self, key: str, spec: SessionSpec) -> None:
        """Create fresh per-session parameters under ``key``; default: none."""

    def _embedding_params(self) -> list[nn.Parameter]:
        """Per-session parameters (finetuned in every mode)."""
        return list(self.per_session.parameters())

    def _mlp_params(self) -> list[nn.Parameter]:
        """The forecaster MLP (finetuned in mode embeddings+mlp)."""
        return []

    def ignores_conditioning(self) -> bool:
        """True when the forecasts cannot depend on the unit and session embeddings (a FiLM model
        whose FiLM maps are constant); False for the others."""
        return False

    def start_as_mlp(self) -> bool:
        """Set the conditioning so that the model computes exactly its own MLP, for the MLP
        warm-up (``training.loop``; such models also have ``mlp_forward``); False (nothing
        changed) for a model without FiLM."""
        return False

    # -- sessions ----------------------------------------------------------------
    def add_session(self, spec: SessionSpec) -> None:
        """Register a session with freshly initialised per-session parameters; others are untouched."""
        if spec.session in self._index:
            raise PocoError(f"model already has a session named {spec.session!r}")
        if spec.n_units == 0:
            raise PocoError(f"session {spec.session!r} has no units")
        key = f"s{len(self.sessions)}"
        like = next(self.parameters(), None)
        self._init_session(key, spec)
        self.sessions.append(spec)
        self._index[spec.session] = len(self.sessions) - 1
        if like is not None:  # new parameters follow the model's device and dtype
            self.to(device=like.device, dtype=like.dtype)

    def session_key(self, session: str) -> str:
        """The parameter key of a session id; unknown ids raise a PocoError naming the known ones."""
        try:
            return f"s{self._index[session]}"
        except KeyError:
            known = ", ".join(s.session for s in self.sessions) or "none"
            raise PocoError(f"model does not know session {session!r} (known: {known})") from None

    def session_spec(self, session: str) -> SessionSpec:
        return self.sessions[int(self.session_key(session)[1:])]

    # -- training interface --------------------------------------------------------
    def forward(self, xs: list[Tensor], sessions: list[str]) -> list[Tensor]:  # noqa: D102
        raise NotImplementedError

    def loss(self, windows: list[Tensor], sessions: list[str]) -> Tensor:
        """MSE over the P predicted steps of windows (B, C+P, N), pooled over the elements of each
        dataset's sessions, summed over datasets (see ``dataset_mse_sum``)."""
        c = self.config.context
        preds = self(  # type: ignore[operator]
            [w[:, :c] for w in windows], sessions
        )
        return self.dataset_loss(preds, [w[:, c:] for w in windows], sessions)

    def dataset_loss(self, preds: list[Tensor], targets: list[Tensor], sessions: list[str]) -> Tensor:
        """``dataset_mse_sum`` with each session's dataset as the model knows it."""
        return dataset_mse_sum(preds, targets, [self.session_spec(s).dataset for s in sessions])

    def parameter_groups(self, session: str | None = None) -> dict[str, list[nn.Parameter]]:
        """Disjoint groups for the finetune modes; a parameter-free model (copy) gives empty lists.

        With ``session`` (finetuning one session), "embeddings" holds only that session's
        per-session parameters (plus a dataset row no other session uses), and parameters
        that only serve other sessions are left out of every group."""
        all_emb = self._embedding_params()
        emb = all_emb if session is None else self._session_params(self.session_key(session))
        mlp = self._mlp_params()
        taken = {id(p) for p in all_emb + mlp}
        rest = [p for p in self.parameters() if id(p) not in taken]
        return {"embeddings": emb, "mlp": mlp, "rest": rest}

    def _session_params(self, key: str) -> list[nn.Parameter]:
        """The per-session parameters of one session."""
        return list(self.per_session[key].parameters()) if key in self.per_session else []

    def unit_embeddings(self, session: str) -> Tensor:
        """(N, d) unit embeddings of a session, without the session embedding (POCO family only)."""
        raise NotImplementedError(f"{self.name} has no unit embeddings")

    def initial_unit_embeddings(self, session: str) -> Tensor | None:
        """The same rows as drawn before training, where the model keeps them (None: not kept)."""
        return None

    def _check(self, xs: list[Tensor], sessions: list[str], length: int | None = None) -> None:
        """Fail early and clearly on mismatched inputs (shape errors deep in attention are opaque)."""
        if len(xs) != len(sessions):
            raise PocoError(f"{len(xs)} input tensors but {len(sessions)} session ids")
        t = self.config.context if length is None else length
        for x, s in zip(xs, sessions):
            n = self.session_spec(s).n_units
            if x.ndim != 3 or x.shape[1] != t or x.shape[2] != n:
                raise PocoError(f"session {s!r}: expected (B, {t}, {n}), got {tuple(x.shape)}")


class UnivariateForecaster(BaseForecaster):
    """A model that forecasts each unit from its own history with shared weights.

    Subclasses implement ``predict`` on (B, N, C) -> (B, N, P); any session size works.
    """

    def forward(self, xs: list[Tensor], sessions: list[str]) -> list[Tensor]:
        self._check(xs, sessions)
        return [self.predict(x.transpose(1, 2)).transpose(1, 2) for x in xs]

    def predict(self, x: Tensor) -> Tensor:
        raise NotImplementedError


class StepwiseForecaster(BaseForecaster):
    """Models that predict one step at a time. Training uses every one-step prediction of the
    window (C + P - 1 targets, the paper's protocol); ``forward`` rolls out P steps."""

    def forward(self, xs: list[Tensor], sessions: list[str]) -> list[Tensor]:
        self._check(xs, sessions)
        return [self.rollout(x, self.session_key(s)) for x, s in zip(xs, sessions)]

    def loss(self, windows: list[Tensor], sessions: list[str]) -> Tensor:
        self._check(windows, sessions, self.config.context + self.config.horizon)
        preds = [self.step_predictions(w, self.session_key(s)) for w, s in zip(windows, sessions)]
        return self.dataset_loss(preds, [w[:, 1:] for w in windows], sessions)

    def rollout(self, x: Tensor, key: str) -> Tensor:
        """(B, C, N) -> (B, P, N) free-running forecast."""
        raise NotImplementedError

    def step_predictions(self, window: Tensor, key: str) -> Tensor:
        """(B, C+P, N) -> (B, C+P-1, N) predictions of window[:, 1:]; the last P are free-running
        from the context except where a model's protocol says otherwise."""
        raise NotImplementedError


def instance_norm(x: Tensor, dim: int = 1, eps: float = 1e-5) -> tuple[Tensor, Tensor, Tensor]:
    """Normalise each unit over time (RevIN without affine): returns (x_norm, mean, std) so
    forecasts can be mapped back with ``y * std + mean``; removes level shifts between windows."""
    mean = x.mean(dim, keepdim=True).detach()
    std = (x.var(dim, keepdim=True, unbiased=False) + eps).sqrt().detach()
    return (x - mean) / std, mean, std
