"""Choosing between POCO and its own MLP by blocked K-fold cross-validation (``poco train --cv-folds K``).

Why (docs/results.md 7.2): on small data one validation split cannot tell POCO's population gain from
noise -- on the FISSA example it prefers the model that is worse on test, on the full Triplett sessions it
cannot see POCO's gain -- so every rule made on one split gives up one goal or the other. Here each
block's train + val frames are cut into K equal parts; fold k validates on part k and trains on the
others, the test frames are never used, and fold K - 1 is exactly the default split. POCO's MLP alone
(``mlp_only``, the function of the MLP warm-up) and POCO in one stage (the reference's procedure) train on
every fold with the same seed; the candidate with the lower mean best validation MSE is chosen and its
default-split run is the model kept. The default split runs first, and from its end on the output path
holds the choice so far, so a cancel or a crash later keeps a validated model. Where the default split's
two runs are more than ``decisive_se`` standard errors apart, that settles the choice and the other folds
are not run (docs/results.md 7.2: it settles the clear cases and runs every fold where one split misled).
Preprocessing statistics
are fitted once, as for the default split (``PreprocessConfig.fit_on``).

The events are one run's (docs/ARCHITECTURE.md, "Events"): one ``start`` whose ``total_steps`` is the
budget of all 2K runs, steps counted on across them, a ``stage`` (``reset_best``) at the start of each
run, a ``crossval_run`` event at its end, a ``crossval_settled`` where the default split settles it
(its ``total_steps`` replaces the budget: the default split's two runs), and one ``done`` with a
``crossval`` summary.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from poco_core.base.device import resolve_device
from poco_core.base.errors import PocoError
from poco_core.base.events import CancelLike, Event
from poco_core.data.preprocess import PreparedData, PreprocessConfig
from poco_core.data.windows import Ranges
from poco_core.models import build_model
from poco_core.training.checkpoint import load_checkpoint, save_checkpoint
from poco_core.training.defaults import (CV_DECISIVE_SE, CV_FOLDS_SUGGESTED, IGNORES_EMBEDDINGS,
                                         TRAIN_DEFAULTS, default_train_steps)
from poco_core.training.loop import LoopOptions, check_windows, population_rows
from poco_core.training.restore import load_model
from poco_core.training.train import (DataLike, TrainRun, as_prepared, default_checkpoint, loop_options,
                                      recording_fingerprints, session_specs, start_run, train_events)
from poco_core.training.validation import evaluate_windows, val_improvement

# the candidates' training options (they replace the MLP warm-up's); the MLP first, the simpler model
CANDIDATES = {"mlp": {"mlp_warmup": False, "mlp_only": True}, "poco": {"mlp_warmup": False, "mlp_only": False}}
NAMES = {"mlp": "POCO's MLP alone", "poco": "POCO (one stage)"}


def fold_ranges(ranges: dict[str, Ranges], k: int, folds: int) -> dict[str, Ranges]:
    """Fold ``k`` of ``folds``: per block, part k of the train + val frames validates, the rest trains."""
    if len(ranges["train"]) != len(ranges["val"]) or any(tr[1] != va[0] for tr, va in zip(ranges["train"], ranges["val"])):
        raise PocoError("cross-validation needs training frames followed by validation frames in every block "
                        "(a split with a validation part, e.g. --split 3 1 1)")
    train_r, val_r = [], []
    for (a, _), (_, t) in zip(ranges["train"], ranges["val"]):
        e = [a + (t - a) * j // folds for j in range(folds + 1)]
        val_r.append((e[k], e[k + 1]))
        train_r += [r for r in ((a, e[k]), (e[k + 1], t)) if r[1] > r[0]]
    return {"train": train_r, "val": val_r, "test": ranges["test"]}


def fold_data(data: PreparedData, k: int, folds: int) -> PreparedData:
    """The sessions with fold ``k``'s ranges (the values are shared, not copied); the last fold is ``data``."""
    if k == folds - 1:
        return data
    return dataclasses.replace(data, sessions=[dataclasses.replace(s, ranges=fold_ranges(s.ranges, k, folds))
                                               for s in data.sessions])


def run_order(folds: int) -> list[tuple[int, str]]:
    """(fold, candidate) in the order they train: the default split first, so its models exist earliest."""
    return [(k, c) for k in (folds - 1, *range(folds - 1)) for c in CANDIDATES]


def choose(val_mse: dict[str, dict[int, float]]) -> tuple[str, dict[str, float], list[int]] | None:
    """The candidate with the lower mean best validation MSE over the folds both have completed
    (ties keep the MLP), the means, and those folds; None before any fold is complete."""
    folds = sorted(set.intersection(*(set(v) for v in val_mse.values())))
    if not folds:
        return None
    means = {c: statistics.fmean(val_mse[c][f] for f in folds) for c in CANDIDATES}
    return min(CANDIDATES, key=means.get), means, folds


def crossval_events(
    data: DataLike,
    model: str = "poco",
    *,
    folds: int = CV_FOLDS_SUGGESTED,
    decisive_se: float | None = CV_DECISIVE_SE,
    checkpoint: str | Path | None = None,
    model_config: dict[str, Any] | None = None,
    preprocess: PreprocessConfig | None = None,
    context: int | None = None,
    horizon: int | None = None,
    cancel: CancelLike | None = None,
    **options: Any,
) -> Iterator[Event]:
    """Train `model` (a registry name of a model with FiLM conditioning: POCO) on each fold as each
    candidate and keep the choice at `checkpoint`; yields event dicts. `decisive_se`: stop after the
    default split when it alone settles the choice (`CV_DECISIVE_SE`; None runs every fold). `options`
    are `LoopOptions` fields, the MLP warm-up's excepted (the candidates set them)."""
    if not isinstance(folds, int) or folds < 2:
        raise PocoError(f"cross-validation needs at least 2 folds, got {folds!r}")
    if not isinstance(model, str):
        raise PocoError("cross-validation trains fresh models: give the model's registry name")
    options = {k: v for k, v in options.items() if k not in ("mlp_warmup", "mlp_only", "mlp_warmup_steps")}
    opts = loop_options({**options, **CANDIDATES["poco"]})
    options.pop("steps", None)
    prepared = as_prepared(data, preprocess)
    prints = recording_fingerprints(data, prepared)
    overrides = {**(model_config or {}), **{k: v for k, v in (("context", context), ("horizon", horizon)) if v is not None}}
    probe = build_model(model, session_specs(prepared), **overrides)
    if not probe.start_as_mlp():
        raise PocoError(f"cross-validation chooses between POCO and its own MLP; {model} has no FiLM conditioning "
                        "(use poco or mlp_transformer)")
    for k in range(folds):
        check_windows(fold_data(prepared, k, folds), probe.config.context + probe.config.horizon)
    steps = opts.steps if opts.steps is not None else default_train_steps(len(prepared.sessions))
    checkpoint = Path(checkpoint) if checkpoint else default_checkpoint(model)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{checkpoint.name}.cv-", dir=checkpoint.parent))  # same disk: moves are atomic
    runs = _Runs(prepared, prints, model, folds, steps, checkpoint, work,
                 dict(model_config=model_config, context=context, horizon=horizon, cancel=cancel, **options),
                 opts, decisive_se)
    try:
        yield from runs.events()
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclasses.dataclass
class _Runs:
    """The 2K runs of one cross-validated choice and the choice so far."""

    data: PreparedData
    prints: dict
    model: str
    folds: int
    steps: int
    checkpoint: Path
    work: Path
    train_kwargs: dict
    opts: LoopOptions
    decisive_se: float | None

    def __post_init__(self) -> None:
        self.order = run_order(self.folds)
        self.val_mse: dict[str, dict[int, float]] = {c: {} for c in CANDIDATES}
        self.finals: dict[str, Event] = {}  # each candidate's done event on the default split
        self.scores: dict[str, float | None] = {}  # ... and its best checkpoint's validation score
        self.default_split: dict[str, float] | None = None  # POCO's paired gain over the MLP there, and its SE
        self.poco_rows: dict | None = None  # POCO's unit rows on the default split, kept with an MLP chosen
        self.t0 = time.perf_counter()

    def _path(self, k: int, cand: str) -> Path:
        return self.work / f"fold{k}-{cand}.pt"

    def events(self) -> Iterator[Event]:
        total = len(self.order) * self.steps
        for i, (k, cand) in enumerate(self.order):
            done = yield from self._run(i, k, cand, total)
            yield self._run_report(i, k, cand, done)
            if done["cancelled"]:
                yield from self._cancelled(i, k, cand, done)
                return
            self.val_mse[cand][k] = done["best_val_mse"]
            if k == self.folds - 1:
                self.finals[cand] = done
            settled = self._settled() if i == len(CANDIDATES) - 1 else None  # the default split is done
            if all(k in v for v in self.val_mse.values()):
                yield self._publish(i)
            if settled is not None:
                yield settled
                break
        pick, means, used = choose(self.val_mse)
        kept_at = self.order.index((self.folds - 1, pick)) * self.steps + self.finals[pick]["best_step"]
        yield {**self.finals[pick], "checkpoint": str(self.checkpoint), "best_val_score": self.scores.get(pick),
               "best_event_step": kept_at,
               "stopped_early": False, "stop_reason": self._how(used),
               "crossval": self._summary(), **self._kept(pick, means, used)}

    def _settled(self) -> Event | None:
        """After the default split's runs: a ``crossval_settled`` event if one candidate's pooled validation
        MSE is lower by more than `decisive_se` standard errors of the paired difference, else None. The
        difference is kept for the summary either way."""
        errors, device = {}, resolve_device(self.opts.device)
        for cand in CANDIDATES:
            model, errors[cand] = load_model(self._path(self.folds - 1, cand)).to(device), {}
            evaluate_windows(model, self.data, "val", batch_size=self.opts.eval_batch_size, stride=self.opts.val_stride,
                             max_windows=self.opts.max_val_windows, device=device, window_mse=errors[cand])
        cfg = model.config
        gain, se = val_improvement(self.data, errors["mlp"], errors["poco"], cfg.context + cfg.horizon, cfg.horizon,
                                   self.opts.val_stride)
        self.default_split = {"gain": gain, "se": se}
        if not self._is_settled():
            return None
        better = "poco" if gain > 0 else "mlp"
        return {"type": "crossval_settled", "candidate": better, "gain": gain, "se": se,
                "total_steps": len(CANDIDATES) * self.steps,  # the run's budget is now the default split's
                "note": f"the default split settles it: {NAMES[better]}'s validation MSE is lower by {abs(gain):.4f} "
                        f"({abs(gain) / se:.1f} standard errors > {self.decisive_se:g}), more than the noise "
                        f"cross-validation guards against, so the other {self.folds - 1} folds are not run"}

    def _is_settled(self) -> bool:
        d = self.default_split
        return d is not None and self.decisive_se is not None and abs(d["gain"]) > self.decisive_se * d["se"]

    def _how(self, used: list[int]) -> str:
        if len(used) == self.folds:
            return f"cross-validated over {self.folds} folds"
        return f"chosen on the default split alone (more than {self.decisive_se:g} standard errors apart)"

    def _run(self, i: int, k: int, cand: str, total: int) -> Iterator[Event]:
        """One candidate on one fold: its events with steps counted on from the runs before; returns its done event."""
        offset, done = i * self.steps, None
        events = train_events(fold_data(self.data, k, self.folds), self.model, checkpoint=self._path(k, cand),
                              fingerprints=self.prints, steps=self.steps, score_test=k == self.folds - 1,
                              **self.train_kwargs, **CANDIDATES[cand])
        for ev in events:
            kind = ev["type"]
            if kind == "start":
                if i == 0:
                    yield {**ev, "total_steps": total, "crossval": {"folds": self.folds, "runs": len(self.order),
                                                                     "candidates": list(CANDIDATES)}}
                yield self._stage(i, k, cand, offset)
            elif kind == "done":
                done = ev
            elif kind in ("checkpoint", "stage") or (kind == "warning" and i > 0):
                continue  # the run's own file in the work folder; the MLP's warm-up stage; warnings said once
            elif kind == "step":
                elapsed = time.perf_counter() - self.t0
                yield {**ev, "step": ev["step"] + offset, "elapsed_s": elapsed,
                       "eta_s": (total - offset - ev["step"]) / max(ev["steps_per_s"], 1e-9)}
            else:
                if kind == "validation" and ev["best"] and k == self.folds - 1:
                    self.scores[cand] = ev["val_score"]
                yield {**ev, "step": ev["step"] + offset} if "step" in ev else ev
        if done is None:
            raise PocoError(f"cross-validation run {i + 1} ended without a result")
        return done

    def _stage(self, i: int, k: int, cand: str, offset: int) -> Event:
        split = " (the default split)" if k == self.folds - 1 else ""
        return {"type": "stage", "stage": f"fold {k + 1}/{self.folds}: {'MLP' if cand == 'mlp' else 'POCO'}",
                "step": offset + 1, "total_steps": self.steps, "reset_best": True,
                "crossval": {"run": i + 1, "fold": k, "candidate": cand},
                "note": f"cross-validation run {i + 1} of {len(self.order)}: {NAMES[cand]} on fold {k + 1} of "
                        f"{self.folds}{split}"}

    def _run_report(self, i: int, k: int, cand: str, done: Event) -> Event:
        how = "cancelled" if done["cancelled"] else done["stop_reason"]
        return {"type": "crossval_run", "run": i + 1, "runs": len(self.order), "fold": k, "folds": self.folds,
                "candidate": cand, "best_val_mse": done["best_val_mse"], "best_step": done["best_step"],
                "cancelled": done["cancelled"], "stop_reason": done["stop_reason"], "test": done["test"],
                "note": f"run {i + 1}/{len(self.order)} ({NAMES[cand]}, fold {k + 1}/{self.folds}): best validation MSE "
                        f"{done['best_val_mse']:.4f} at its step {done['best_step']}; {how}"}

    def _summary(self) -> dict:
        found = choose(self.val_mse)
        pick, means, used = found if found else (None, {}, [])
        return {"folds": self.folds, "choice": pick, "mean_val_mse": means, "folds_compared": used,
                "val_mse": {c: [v.get(f) for f in range(self.folds)] for c, v in self.val_mse.items()},
                "complete": len(used) == self.folds, "default_split": self.default_split,
                "settled_on_default_split": self._is_settled()}

    def _publish(self, i: int) -> Event:
        """The choice so far, from its default-split run, atomically at the user's path."""
        pick, _, used = choose(self.val_mse)
        payload = load_checkpoint(self._path(self.folds - 1, pick))
        save_checkpoint(self.checkpoint, {**payload, **self._population(pick), "crossval": self._summary()})
        return {"type": "checkpoint", "step": (i + 1) * self.steps, "path": str(self.checkpoint),
                "note": f"the choice on {len(used)} of {self.folds} folds: {NAMES[pick]}"}

    def _population(self, pick: str) -> dict:
        """With the MLP chosen, POCO's unit rows from its default-split run go with it, as after a warm-up
        that kept the MLP (``loop.population_rows``), for the embedding analysis."""
        if pick != "mlp":
            return {}
        if self.poco_rows is None:  # read once: the default split's POCO run does not change
            done = self.finals["poco"]
            self.poco_rows = population_rows(load_model(self._path(self.folds - 1, "poco")), done["best_step"],
                                             done["best_val_mse"])
        return {"population_embeddings": self.poco_rows}

    def _kept(self, pick: str, means: dict[str, float], used: list[int]) -> dict:
        other = next(c for c in CANDIDATES if c != pick)
        wins = sum(self.val_mse[pick][f] <= self.val_mse[other][f] for f in used)
        if self._is_settled() and len(used) == 1:
            d = self.default_split
            why = (f"cross-validation chose {NAMES[pick]} on the default split alone: best validation MSE "
                   f"{means[pick]:.4f} against {means[other]:.4f} for {NAMES[other]}, {abs(d['gain']) / d['se']:.1f} "
                   f"standard errors apart")
        else:
            why = (f"cross-validation chose {NAMES[pick]}: mean best validation MSE {means[pick]:.4f} against "
                   f"{means[other]:.4f} for {NAMES[other]} over {len(used)} fold(s), lower in {wins} of them")
        if pick == "poco":
            return {"kept": "all", "kept_note": why}
        return {"kept": "mlp", "kept_note": f"{why}: the model kept is POCO's MLP, and {IGNORES_EMBEDDINGS}; the unit "
                                            "embeddings POCO learned on the default split are kept in the checkpoint "
                                            "for the embedding analysis"}

    def _cancelled(self, i: int, k: int, cand: str, done: Event) -> Iterator[Event]:
        """Keep the choice so far; before one exists, the MLP's finished default-split run, else this run's checkpoint."""
        found = choose(self.val_mse)
        if found:
            pick, means, used = found
            final, kept = self.finals[pick], self._kept(pick, means, used)
            note = f"cancelled in run {i + 1} of {len(self.order)}; kept the choice so far"
        elif "mlp" in self.finals:
            final, kept = self.finals["mlp"], {"kept": "mlp", "kept_note": "cancelled before POCO finished the default "
                                               f"split: the model kept is POCO's MLP, and {IGNORES_EMBEDDINGS}"}
            save_checkpoint(self.checkpoint, {**load_checkpoint(self._path(self.folds - 1, "mlp")),
                                              "crossval": self._summary()})
            note = f"cancelled in run {i + 1} of {len(self.order)}, before any fold was complete; no choice was made"
        else:
            final, kept, note = done, {}, done["note"]
            if self._path(k, cand).is_file():
                os.replace(self._path(k, cand), self.checkpoint)
        yield {**final, "checkpoint": str(self.checkpoint), "cancelled": True, "stopped_early": False,
               "stop_reason": "cancelled", "note": note, "crossval": self._summary(), **kept}


def crossval(data: DataLike, model: str = "poco", folds: int = CV_FOLDS_SUGGESTED,
             steps: int | None = TRAIN_DEFAULTS["steps"], device: str = "auto", checkpoint: str | Path | None = None, *,
             decisive_se: float | None = CV_DECISIVE_SE, cancel: CancelLike | None = None, **kwargs: Any) -> TrainRun:
    """Notebook entry: `run = crossval(recs, "poco", folds=4)`; `run.wait()["crossval"]`. Keyword
    arguments as `train`'s (no `resume`: the 2K runs start afresh)."""
    def events(*args: Any, **kw: Any) -> Iterator[Event]:
        return crossval_events(*args, folds=folds, decisive_se=decisive_se, **kw)

    return start_run(events, data, model, steps, device, checkpoint, cancel, kwargs)
