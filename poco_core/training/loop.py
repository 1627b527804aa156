"""The optimisation loop that training and finetuning share, as a generator of event dicts.

One step draws one batch per dataset (windows in proportion to each session's count, grouped
by session), sums the datasets' losses and takes one AdamW step with gradient clipping.
Every `val_every` steps it validates; a lower validation MSE (pooled over all sessions' elements,
as the reference) atomically rewrites the checkpoint. By default the step budget follows the
session count and the cadence the amount of data (`training.defaults`), and a run stops early
after `patience` validations without a new best (the `done` event says when and why). With
`mlp_warmup` a FiLM model (POCO) first trains only its MLP, the conditioning frozen so that the
model is exactly that MLP, then everything from the MLP's best (`stage` events "mlp" and "all";
the best checkpoint is chosen over both). When the loop finishes, the best weights (kept in memory,
never re-read from the path another process might have written) are scored on the test split
and the checkpoint gains those metrics (`score_test=False` skips it: cross-validation's other
folds). A cancelled run skips test scoring: it keeps its best checkpoint, or -- cancelled before
any validation -- saves the current weights with a note saying so, and stops at once.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from poco_core.base.device import resolve_device
from poco_core.base.errors import PocoError
from poco_core.base.events import CancelLike, Event, is_cancelled
from poco_core.training.checkpoint import save_checkpoint
from poco_core.training.defaults import (
    COND_LR_SCALE,
    EMBEDDING_ANALYSIS_HOW,
    IGNORES_EMBEDDINGS,
    MLP_WARMUP,
    MLP_WARMUP_FRACTION,
    MLP_WARMUP_SE,
    PATIENCE,
    PATIENCE_MIN_STEPS,
    TRAIN_DEFAULTS,
    auto_val_every,
    default_train_steps,
)
from poco_core.training.sampling import SessionBatchSampler, gather_windows
from poco_core.training.validation import (
    autocast,
    evaluate_windows,
    pooled_mse,
    summarise,
    val_improvement,
)

SPLITS = ("train", "val", "test")
MAX_SAMPLE_ROIS = 8  # asked-for units shown per forecast_sample event at most
VAL_CACHE_BYTES = 512 << 20  # cap on cached validation hidden layers (embedding-only finetuning)


@dataclass
class LoopOptions:
    """How to optimise; the defaults are the paper's (POCO_SPEC.md, "Training")."""

    steps: int | None = TRAIN_DEFAULTS["steps"]  # None -> defaults.default_train_steps(number of sessions)
    batch_size: int = TRAIN_DEFAULTS["batch_size"]
    lr: float = TRAIN_DEFAULTS["lr"]
    cond_lr_scale: float = COND_LR_SCALE  # lr multiplier for all but the model's MLP group (encoder, embeddings, FiLM maps)
    embedding_lr_scale: float = TRAIN_DEFAULTS["embedding_lr_scale"]  # the embeddings' lr: lr * cond_lr_scale * this
    weight_decay: float = 1e-4
    clip: float = 5.0
    val_every: int | None = TRAIN_DEFAULTS["val_every"]  # None -> defaults.auto_val_every(steps per pass over the train windows)
    patience: int = PATIENCE  # validations without a new best before stopping early; 0 = never
    mlp_warmup: bool = MLP_WARMUP  # train the MLP alone first (FiLM models, fresh training runs; see defaults)
    mlp_warmup_steps: int | None = None  # cap on the warm-up; None -> MLP_WARMUP_FRACTION of the steps
    mlp_warmup_se: float = MLP_WARMUP_SE  # stage 2 must beat the warm-up's best by this many standard errors
    mlp_only: bool = False  # the warm-up without stage 2: a FiLM model trained as its own MLP (cross-validation's candidate)
    score_test: bool = True  # score the best checkpoint on the test split at the end (off for cross-validation's folds)
    train_stride: int = 1  # frames between training windows' starts (an epoch is the windows at this stride)
    val_stride: int = 1
    max_val_windows: int | None = TRAIN_DEFAULTS["max_val_windows"]
    test_stride: int = 1
    eval_batch_size: int = 256
    seed: int = 0
    device: str | torch.device = "auto"
    bf16: bool = False
    sample_units: int = 4  # units shown in each forecast_sample event
    sample_rois: dict[str, list[str]] | None = None  # session -> unit ids to show instead (the GUI's selection)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["device"] = str(d["device"])
        return d


@dataclass
class LoopState:
    """What a resumed run restores besides the weights."""

    step: int = 0
    optimizer: dict | None = None
    rng: dict | None = None
    history: dict = field(default_factory=lambda: {"loss": [], "validation": []})
    best_val_mse: float = math.inf
    best_step: int = -1


def population_rows(model: nn.Module, step: int, val_mse: float) -> dict:
    """A POCO model's unit rows (and their initial draw) by session, as a checkpoint keeps them beside a
    model kept at its MLP (``population_embeddings``, read by ``poco embed``)."""
    sessions = [spec.session for spec in model.sessions]
    initial = {s: model.initial_unit_embeddings(s) for s in sessions}
    return {"step": step, "val_mse": val_mse, "unit": {s: model.unit_embeddings(s).cpu().clone() for s in sessions},
            "initial": {s: t.cpu().clone() for s, t in initial.items() if t is not None}}


class LossModule(nn.Module):
    """Wraps `model.loss` as a forward pass so DistributedDataParallel sees (and syncs) it.

    With `frozen_hidden` (embedding-only finetuning of a model exposing `hidden_states`) the
    MLP hidden layer is computed once per window outside autograd and handed to the model, so
    neither the forward nor the backward pass recomputes it. With `mlp_only` (the MLP warm-up,
    conditioning frozen at alpha = 1, beta = 0) the model's `mlp_forward` computes the same
    forecasts without the encoder.
    """

    def __init__(self, model: nn.Module, frozen_hidden: bool = False):
        super().__init__()
        self.model = model
        self.frozen_hidden = frozen_hidden
        self.mlp_only = False

    def forward(self, windows: list[torch.Tensor], sessions: list[str]) -> torch.Tensor:
        if not (self.frozen_hidden or self.mlp_only):
            return self.model.loss(windows, sessions)
        c = self.model.config.context
        xs = [w[:, :c] for w in windows]
        if self.mlp_only:
            return self.model.dataset_loss(self.model.mlp_forward(xs), [w[:, c:] for w in windows], sessions)
        with torch.no_grad():
            hidden = self.model.hidden_states(xs)
        return self.model.dataset_loss(self.model(xs, sessions, hidden=hidden), [w[:, c:] for w in windows], sessions)


def check_windows(data, length: int) -> None:
    """Every session needs a window of `length` frames in each split (the error names the session)."""
    for sd in data.sessions:
        for split in SPLITS:
            sd.windows(split, length)


def rng_state(np_rng: np.random.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np_rng.bit_generator.state}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(np_rng: np.random.Generator, state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np_rng.bit_generator.state = state["numpy"]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def seed_everything(seed: int, rank: int = 0) -> np.random.Generator:
    """Seed torch and return the numpy generator for batch sampling; ranks draw different batches."""
    torch.manual_seed(seed + 7919 * rank)
    return np.random.default_rng([seed, rank])


def _headline(m: dict) -> dict:
    """What a validation event reports per session and on average: scores against the three baselines."""
    keys = ("mse", "score", "pearson", "copy_mse", "mean_mse", "mean_score", "smooth_mse", "smooth_score", "diagnosis")
    return {k: m.get(k) for k in keys}


@dataclass
class Loop:
    """One optimisation run. `payload` builds what the checkpoint stores besides the loop's own
    fields (model dict, preprocessing...). Under torchrun, `wrap` wraps the loss module in
    DistributedDataParallel and `is_cancelled` agrees on cancellation across ranks
    (see poco_core.training.distributed)."""

    model: nn.Module
    data: Any
    params: list[nn.Parameter]
    opts: LoopOptions
    checkpoint: Path
    payload: Callable[[], dict]
    cancel: CancelLike | None = None
    state: LoopState = field(default_factory=LoopState)
    kind: str = "train"
    rank: int = 0
    world_size: int = 1
    wrap: Callable[[nn.Module], nn.Module] | None = None
    is_cancelled: Callable[[], bool] | None = None
    frozen_hidden: bool = False

    def __post_init__(self) -> None:
        self.opts = dataclasses.replace(self.opts)  # steps/val_every are resolved on this copy
        self.device = resolve_device(self.opts.device)
        self.model.to(self.device)
        self.np_rng = seed_everything(self.opts.seed, self.rank)
        self.sample_rng = np.random.default_rng(self.opts.seed + 1)  # display only; never affects training
        ctx, hor = self.model.config.context, self.model.config.horizon
        self.length = ctx + hor
        check_windows(self.data, self.length)
        self.samplers: list[tuple[list, SessionBatchSampler, list]] = []
        for i, ds in enumerate(dict.fromkeys(sd.dataset for sd in self.data.sessions)):
            sds = [sd for sd in self.data.sessions if sd.dataset == ds]
            wins = [sd.windows("train", self.length, self.opts.train_stride) for sd in sds]
            sampler = SessionBatchSampler([len(w) for w in wins], self.opts.batch_size,
                                          (self.opts.seed, self.rank, i), start=self.state.step)
            self.samplers.append((sds, sampler, wins))
        # resolve the automatic budget and cadence from the data (stored with the checkpoint)
        if self.opts.steps is None:
            self.opts.steps = default_train_steps(len(self.data.sessions))
        if self.opts.val_every is None:
            epoch_steps = min(int(smp.counts.sum()) for _, smp, _ in self.samplers) / self.opts.batch_size
            self.opts.val_every = auto_val_every(epoch_steps)
        if self.opts.mlp_only:
            self.opts.mlp_warmup_steps = self.opts.steps
        elif self.opts.mlp_warmup_steps is None:
            self.opts.mlp_warmup_steps = max(1, round(self.opts.steps * MLP_WARMUP_FRACTION))
        self.optimizer = None
        if self.params:
            self.optimizer = torch.optim.AdamW(self._param_groups(), lr=self.opts.lr, weight_decay=self.opts.weight_decay,
                                               amsgrad=True)
            if self.state.optimizer is not None:
                self.optimizer.load_state_dict(self.state.optimizer)
        if self.state.rng is not None:
            set_rng_state(self.np_rng, self.state.rng)
        # frozen MLP: the validation windows' hidden layers are computed once (see evaluate_windows)
        self._val_cache = {} if self.frozen_hidden and self._val_hidden_bytes() <= VAL_CACHE_BYTES else None
        self._best: dict | None = None  # the best checkpoint's payload, a copy held in memory
        self.frozen: list[nn.Parameter] = []  # the conditioning, while the MLP warms up
        self._warm_best: tuple[dict, dict] | None = None  # the warm-up's best (weights, optimizer) where `_best` lacks it
        self._population: dict | None = None  # stage 2's best unit rows, kept with an MLP kept (`_with_population`)
        self.loss_module = module = LossModule(self.model, self.frozen_hidden)
        self.step_module = self.wrap(module) if self.wrap else module

    def _param_groups(self) -> list[dict]:
        """The MLP at ``lr``, the encoder and FiLM maps at ``lr * cond_lr_scale``, the unit and
        session embeddings at ``lr * cond_lr_scale * embedding_lr_scale``; one group where the rates
        agree or no MLP is trained (a model without one, embedding-only finetuning)."""
        groups = self.model.parameter_groups()
        mlp, emb = ({id(p) for p in groups[k]} for k in ("mlp", "embeddings"))
        if not any(id(p) in mlp for p in self.params):
            return [{"params": self.params}]
        cond = self.opts.cond_lr_scale
        scale = {"mlp": 1.0, "rest": cond, "embeddings": cond * self.opts.embedding_lr_scale}
        by_scale: dict[float, list[nn.Parameter]] = {s: [] for s in scale.values()}  # the MLP's group first
        for p in self.params:
            by_scale[scale["mlp" if id(p) in mlp else "embeddings" if id(p) in emb else "rest"]].append(p)
        return [{"params": ps, "lr": self.opts.lr * s} for s, ps in by_scale.items() if ps]

    # -- pieces ------------------------------------------------------------------
    def _batch(self) -> tuple[list[torch.Tensor], list[str]]:
        windows, sessions = [], []
        for sds, sampler, wins in self.samplers:
            for s, idx in sampler.sample():
                windows.append(torch.from_numpy(gather_windows(wins[s], idx)).to(self.device, non_blocking=True))
                sessions.append(sds[s].session)
        return windows, sessions

    def train_step(self) -> float:
        windows, sessions = self._batch()
        self.model.train()
        with autocast(self.device, self.opts.bf16):
            loss = self.step_module(windows, sessions)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.opts.clip)
        self.optimizer.step()
        return float(loss.detach())

    def _val_hidden_bytes(self) -> int:
        """Memory the validation windows' MLP hidden layers take (float32)."""
        cap = self.opts.max_val_windows
        counts = [len(sd.windows("val", self.length, self.opts.val_stride)) for sd in self.data.sessions]
        units = sum((n if cap is None else min(n, cap)) * len(sd.unit_ids) for n, sd in zip(counts, self.data.sessions))
        return units * self.model.config.hidden * 4

    def _evaluate_val(self, window_mse: dict | None = None) -> dict[str, dict]:
        return evaluate_windows(self.model, self.data, "val", batch_size=self.opts.eval_batch_size,
                                stride=self.opts.val_stride, max_windows=self.opts.max_val_windows,
                                device=self.device, bf16=self.opts.bf16, hidden_cache=self._val_cache,
                                window_mse=window_mse)

    def validate(self, step: int) -> Event:
        gated = self._against_warmup()
        errors: dict | None = {} if gated else None
        per = self._evaluate_val(errors)
        _, mean = summarise(per)
        val_mse = pooled_mse(per)  # the reference's criterion: pooled over sessions
        best = val_mse < self.state.best_val_mse
        entry = {"step": step, "val_mse": val_mse, "val_score": mean["score"], "pearson": mean["pearson"]}
        if gated:
            gain, se = self._gain_over_warmup(errors)
            entry["vs_mlp"] = {"gain": gain, "se": se, "needed": self.opts.mlp_warmup_se * se}
            best = best and gain > self.opts.mlp_warmup_se * se
            if self.rank == 0 and val_mse < (self._population or {}).get("val_mse", math.inf):
                self._population = population_rows(self.model, step, val_mse)
        if best:
            self.state.best_val_mse, self.state.best_step = val_mse, step
        self.state.history["validation"].append(entry)
        return {"type": "validation", **entry, "best": best, "mean": _headline(mean),
                "per_session": {k: _headline(m) for k, m in per.items()}}

    @torch.no_grad()
    def forecast_sample(self, step: int) -> Event:
        """One validation window of one session (rotating), a few units, forecast vs actual."""
        wanted = self.opts.sample_rois or {}
        shown = [sd for sd in self.data.sessions if wanted.get(sd.session)] or self.data.sessions
        sd = shown[(step // max(self.opts.val_every, 1)) % len(shown)]
        wins = sd.windows("val", self.length)
        w = torch.from_numpy(gather_windows(wins, [int(self.sample_rng.integers(len(wins)))])).to(self.device)
        index = {u: i for i, u in enumerate(sd.unit_ids)}
        units = np.array([index[u] for u in wanted.get(sd.session, []) if u in index][:MAX_SAMPLE_ROIS], dtype=int)
        if not len(units):  # nothing asked for, or preprocessing dropped it: a few random units
            units = np.sort(self.sample_rng.choice(w.shape[2], size=min(self.opts.sample_units, w.shape[2]), replace=False))
        ctx = self.model.config.context
        self.model.eval()
        (pred,) = self.model([w[:, :ctx]], [sd.session])
        pick = lambda t: t[0][:, units].T.float().cpu().tolist()  # noqa: E731  (units x time)
        return {"type": "forecast_sample", "step": step, "session": sd.session, "rois": units.tolist(),
                "unit_ids": [sd.unit_ids[i] for i in units], "context": pick(w[:, :ctx]),
                "actual": pick(w[:, ctx:]), "forecast": pick(pred)}

    def save(self, step: int, note: str | None = None) -> Event | None:
        if self.rank != 0:
            return None
        payload = {**self.payload(), "history": self.state.history, "metrics": {}, "step": step,
                   "best_val_mse": self.state.best_val_mse, "loop": self.opts.to_dict(), "kind": self.kind,
                   "optimizer": self.optimizer.state_dict() if self.optimizer else None,
                   "rng": rng_state(self.np_rng)}
        if note:
            payload["note"] = note
        self._best = copy.deepcopy(payload)
        save_checkpoint(self.checkpoint, payload)
        return {"type": "checkpoint", "step": step, "path": str(self.checkpoint), **({"note": note} if note else {})}

    def _cancelled(self) -> bool:
        return self.is_cancelled() if self.is_cancelled else is_cancelled(self.cancel)

    # -- the run -----------------------------------------------------------------
    def run(self) -> Iterator[Event]:
        """The run's events. Failures raise; the consumer (CLI, GUI job) reports them as `error` events."""
        return self._run()

    def _run(self) -> Iterator[Event]:
        opts, st = self.opts, self.state
        total = opts.steps if self.params else 0
        warmup = self._setup_warmup()
        yield {"type": "start", "kind": self.kind, "total_steps": total, "start_step": st.step,
               "sessions": [sd.session for sd in self.data.sessions], "device": str(self.device),
               "trainable_params": sum(p.numel() for p in self.params), "world_size": self.world_size,
               "val_every": opts.val_every, "patience": opts.patience, "cond_lr_scale": opts.cond_lr_scale,
               "embedding_lr_scale": opts.embedding_lr_scale, "mlp_warmup": warmup, "mlp_warmup_steps": opts.mlp_warmup_steps}
        try:
            yield from self._steps(total, warmup)
        finally:
            self._unfreeze()

    def _steps(self, total: int, warmup: bool) -> Iterator[Event]:
        opts, st = self.opts, self.state
        cancelled, validated, step, t0 = False, False, st.step, time.perf_counter()
        stop_reason = "finished"
        if warmup:
            yield self._begin_warmup(total)
        for step in range(st.step + 1, total + 1):
            if self._cancelled():
                cancelled, step = True, step - 1
                break
            yield from self._stage_change(step, total)
            loss = self.train_step()
            if not math.isfinite(loss):
                raise PocoError(f"the training loss became {loss} at step {step}; try a lower learning rate "
                                "or check the data")
            st.history["loss"].append(loss)
            elapsed = time.perf_counter() - t0
            rate = (step - st.step) / max(elapsed, 1e-9)
            yield {"type": "step", "step": step, "loss": loss, "lr": self.optimizer.param_groups[0]["lr"],
                   "steps_per_s": rate, "elapsed_s": elapsed, "eta_s": (total - step) / rate,
                   **getattr(self.model, "step_stats", {})}
            warm_end = bool(self.frozen) and step >= opts.mlp_warmup_steps
            if step % opts.val_every == 0 or step == total or warm_end:
                yield from self._validate_and_save(step)
                validated = True
                if step == total:
                    break
                if self.frozen and self.opts.mlp_only and self._stop_early(step):
                    stop_reason = f"stopped early at step {step}: {self._no_progress(step)}"
                    break
                if self.frozen and (warm_end or self._stop_early(step)):
                    yield self._end_warmup(step, total, self._no_progress(step) if not warm_end else
                                           f"reached its cap of {opts.mlp_warmup_steps} steps")
                elif self._stop_early(step):
                    stop_reason = f"stopped early at step {step}: {self._no_progress(step)}"
                    break
        if cancelled:
            yield from self._keep_on_cancel(step)
            return
        if not validated and (st.best_step < 0 or step > st.step):
            yield from self._validate_and_save(step)
        yield from self._finish(step, stop_reason)

    def _stop_early(self, step: int) -> bool:
        """``patience`` validations and at least PATIENCE_MIN_STEPS steps without a new best (in this stage)."""
        return bool(self.opts.patience) and self.validations_since_best() >= self.opts.patience \
            and step - self._since() >= PATIENCE_MIN_STEPS

    def _no_progress(self, step: int) -> str:
        return (f"no lower validation MSE in {self.validations_since_best()} validations ({step - self._since()} steps) "
                f"since step {self._since()}")

    def _since(self) -> int:
        """The step patience counts from: the best, or the start of the MLP warm-up's second stage."""
        stages = self.state.history.get("stages") or [{"step": 0}]
        return max(self.state.best_step, stages[-1]["step"] - 1)

    def validations_since_best(self) -> int:
        """Validations after the best one (from the history, so a resumed run counts on)."""
        return sum(1 for v in self.state.history["validation"] if v["step"] > self._since())

    # -- the MLP warm-up -------------------------------------------------------
    def _setup_warmup(self) -> bool:
        """Whether the run warms the MLP up: a fresh training run with ``mlp_warmup`` of a model that
        can compute its own MLP (its FiLM is set to alpha = 1, beta = 0 here), or a resumed run that
        was still warming up. Finetuning never does: its model's conditioning is already trained."""
        if not ((self.opts.mlp_warmup or self.opts.mlp_only) and self.kind == "train" and self.params):
            return False
        stages = self.state.history.get("stages")
        if stages:
            return stages[-1]["stage"] == "mlp"
        if self.state.step == 0 and self.model.start_as_mlp():
            return True
        if self.opts.mlp_only:
            raise PocoError(f"mlp_only: {self.model.name} has no FiLM conditioning to freeze (only POCO-like models "
                            "can train as their own MLP)")
        return False

    def _begin_warmup(self, total: int) -> Event:
        """Stage 1: freeze every trainable parameter outside the MLP group (no gradient, so AdamW
        neither steps nor decays them)."""
        mlp = {id(p) for p in self.model.parameter_groups()["mlp"]}
        self.frozen = [p for p in self.params if id(p) not in mlp]
        for p in self.frozen:
            p.requires_grad_(False)
        self.loss_module.mlp_only = True
        stages = self.state.history.setdefault("stages", [])
        if stages:  # resumed from the warm-up's best checkpoint
            self._snapshot_warmup()
        else:
            stages.append({"stage": "mlp", "step": 1})
        return {"type": "stage", "stage": "mlp", "step": self.state.step + 1, "reset_best": False,
                "total_steps": min(self.opts.mlp_warmup_steps, total) - self.state.step,
                "note": f"MLP warm-up: only the MLP trains, the conditioning frozen (alpha = 1, beta = 0), for at most "
                        f"{self.opts.mlp_warmup_steps} steps or until the validation stops improving"}

    def _snapshot_warmup(self) -> None:
        self._warm_best = (copy.deepcopy(self.model.state_dict()), copy.deepcopy(self.optimizer.state_dict()))

    def _warmup_best(self) -> tuple[dict, dict] | None:
        """The warm-up's best weights and optimizer state: on rank 0 the best checkpoint held in
        memory once stage 1 has saved one (no second copy); else the snapshot (other ranks, which
        save nothing, and a run resumed from the warm-up's best)."""
        if self.rank == 0 and self._best is not None:
            return self._best["model"]["state_dict"], self._best["optimizer"]
        return self._warm_best

    def _end_warmup(self, step: int, total: int, why: str) -> Event:
        """Stage 2 from the warm-up's best weights and optimizer state; patience counts afresh."""
        best = self._warmup_best()
        if best is not None:
            weights, optimizer = best
            self.model.load_state_dict(weights)
            self.optimizer.load_state_dict(optimizer)
        if self.opts.mlp_warmup_se > 0:  # what stage 2 must beat, kept in the history for a resumed run
            errors: dict = {}
            self._evaluate_val(errors)
            self.state.history["warmup_window_mse"] = {k: v.tolist() for k, v in errors.items()}
        self._unfreeze()
        self.state.history["stages"].append({"stage": "all", "step": step + 1, "from_step": self.state.best_step})
        return {"type": "stage", "stage": "all", "step": step + 1, "total_steps": total - step, "reset_best": False,
                "note": f"MLP warm-up ended at step {step}: {why}; training everything from its best (step "
                        f"{self.state.best_step}), kept only if its validation MSE is lower by more than "
                        f"{self.opts.mlp_warmup_se:g} standard error(s)"}

    def _against_warmup(self) -> bool:
        """In stage 2 every new best must beat the warmed-up MLP clearly (the one-standard-error rule:
        among the candidates within noise of each other, the simpler model is kept). Checkpoints
        written before the rule have no warm-up errors to compare with and keep the old choice."""
        stages = self.state.history.get("stages") or []
        return bool(stages) and stages[-1]["stage"] == "all" and self.opts.mlp_warmup_se > 0 \
            and "warmup_window_mse" in self.state.history

    def _gain_over_warmup(self, errors: dict) -> tuple[float, float]:
        """The candidate's pooled validation MSE below the warm-up's best, and its standard error
        (blocks of windows one horizon long, from the spacing of the windows validated;
        `validation.paired_improvement`)."""
        base = {k: np.asarray(v) for k, v in self.state.history["warmup_window_mse"].items()}
        return val_improvement(self.data, base, errors, self.length, self.model.config.horizon, self.opts.val_stride)

    def _unfreeze(self) -> None:
        for p in self.frozen:
            p.requires_grad_(True)
        self.frozen = []
        self.loss_module.mlp_only = False

    def _keep_on_cancel(self, step: int) -> Iterator[Event]:
        """Cancelled: keep the best checkpoint (or save the current weights, saying so), and say which
        model that is after a warm-up; no test scoring."""
        note = None
        if self._best is None and self.state.best_step < 0:
            note = (f"cancelled at step {step} before any validation: these are the current weights, "
                    "not a validated best")
            saved = self.save(step, note)
            if saved:
                yield saved
        elif self.rank == 0 and self._best is not None:
            payload = self._with_population(self._best)
            if payload is not self._best:  # the MLP kept: its checkpoint gains the population's rows
                save_checkpoint(self.checkpoint, payload)
        yield {"type": "done", "best_step": self.state.best_step, "best_val_mse": self.state.best_val_mse,
               "test": {}, "metrics": {}, "checkpoint": str(self.checkpoint), "cancelled": True, "last_step": step,
               "stopped_early": False, "stop_reason": "cancelled",
               "note": note or f"cancelled at step {step}; kept the best checkpoint (step {self.state.best_step})",
               **self._kept_model()}

    def _stage_change(self, step: int, total: int) -> Iterator[Event]:
        """Models trained in stages (CalM: quantizer, then transformer) declare the stage of the next
        step with `training_stage(kind)`; on a change emit a `stage` event (and the model's
        `stage_report()` event) and, where the stage asks, restart best-checkpoint tracking."""
        declared = getattr(self.model, "training_stage", None)
        if declared is None:
            return
        info = declared(self.kind)
        previous = getattr(self, "_stage", None)
        if info["stage"] == previous:
            return
        self._stage = info["stage"]
        left = total - step + 1
        steps = left if info["steps_left"] is None else min(info["steps_left"], left)
        if previous is not None:
            yield self.model.stage_report()
            if info["reset_best"]:
                self.state.best_val_mse, self.state.best_step = math.inf, -1
        yield {"type": "stage", "stage": info["stage"], "step": step, "total_steps": steps,
               "reset_best": bool(info["reset_best"] and previous is not None)}

    def _validate_and_save(self, step: int) -> Iterator[Event]:
        event = self.validate(step)
        yield event
        if event["best"] and self.frozen and self.rank != 0:
            self._snapshot_warmup()
        if event["best"]:
            saved = self.save(step)
            if saved:
                yield saved
        yield self.forecast_sample(step)

    def _resumed_best(self) -> dict:
        """A resumed run that never improved: its best is the checkpoint it resumed from."""
        from poco_core.training.checkpoint import load_checkpoint

        return load_checkpoint(self.checkpoint)

    def _finish(self, last_step: int, stop_reason: str) -> Iterator[Event]:
        metrics: dict = {}
        if self.rank == 0:
            best = self._best if self._best is not None else self._resumed_best()
            self.model.load_state_dict(best["model"]["state_dict"])
            metrics = {"best_val_mse": self.state.best_val_mse}
            if self.opts.score_test:
                per = evaluate_windows(self.model, self.data, "test", batch_size=self.opts.eval_batch_size,
                                       stride=self.opts.test_stride, device=self.device, bf16=self.opts.bf16)
                datasets, mean = summarise(per)
                metrics["test"] = {"sessions": per, "datasets": datasets, "mean": mean}
            save_checkpoint(self.checkpoint, self._with_population({**best, "metrics": metrics}))
        yield {"type": "done", "best_step": self.state.best_step, "best_val_mse": self.state.best_val_mse,
               "test": metrics.get("test", {}).get("mean", {}), "metrics": metrics,
               "checkpoint": str(self.checkpoint), "cancelled": False, "last_step": last_step,
               "stopped_early": stop_reason.startswith("stopped early"), "stop_reason": stop_reason,
               "stages": self.state.history.get("stages", []), **self._kept_model()}

    def _with_population(self, payload: dict) -> dict:
        """The best checkpoint, and where it is POCO's MLP (whose forecasts ignore the unit embeddings), the
        unit rows of stage 2's best validation too: what the population learned, for ``poco embed``
        (docs/results.md 7.3), while the forecasts stay the MLP's."""
        if self._population is None or self._kept_model().get("kept") != "mlp":
            return payload
        return {**payload, "population_embeddings": self._population}

    def _kept_model(self) -> dict:
        """After an MLP warm-up, which model the best checkpoint is (`kept`: "mlp" or "all") and, where
        it is the MLP, why, so that a run that gave back POCO's MLP says so where it ends."""
        stages = self.state.history.get("stages") or []
        if not stages:
            return {}
        if stages[-1]["stage"] == "mlp":
            why = "the run trained only the MLP (mlp_only)" if self.opts.mlp_only else "the run ended during the MLP warm-up"
        elif self.state.best_step < stages[-1]["step"]:
            margin = f" by more than {self.opts.mlp_warmup_se:g} standard error(s)" if self.opts.mlp_warmup_se > 0 else ""
            why = f"no checkpoint after the warm-up beat the warmed-up MLP{margin}"
        else:
            return {"kept": "all"}
        if self._population is not None:
            rows = (f"the unit embeddings its population stage learned (step {self._population['step']}) are kept "
                    "in the checkpoint for the embedding analysis")
        else:
            rows = f"for embeddings to analyse, train with {EMBEDDING_ANALYSIS_HOW}"
        return {"kept": "mlp", "kept_note": f"{why}: the model kept is POCO's MLP, and {IGNORES_EMBEDDINGS}; {rows}"}

