"""Defaults the Python API, the CLI and the GUI share for training and finetuning, defined once.

Values are the paper's (POCO_SPEC.md, "Training" and "Finetuning on a new session"): AdamW at
lr 3e-4, batches of 64 windows; training runs 5,000 steps for one session and 10,000 for several,
validating at least 4 times per pass over the training windows and at least every 100 steps, and
stopping early after 10 validations without a new best;
finetuning 2,000 steps validating every 20, on a bounded, evenly spread sample of at most 64
validation windows per session (``max_val_windows=None`` validates on all of them).
"""
from __future__ import annotations

FINETUNE_MODES = ("embeddings", "embeddings+mlp", "all")
# learning-rate factor for the unit and session embeddings on top of the conditioning's rate
# (``--embedding-lr-scale``; applies only where the MLP trains too, as COND_LR_SCALE). 1: one rate, as the
# reference; finetuning keeps one rate (the paper's).
EMBEDDING_LR_SCALE = 1.0
# what a model's `ignores_conditioning()` means, for the notes of the embedding analysis and finetuning
IGNORES_EMBEDDINGS = "its forecasts do not depend on its unit and session embeddings"
CONSTANT_FILM = ("the model's FiLM maps are constant (untrained, or kept at its MLP warm-up because the population did "
                 f"not clearly improve on the MLP), so {IGNORES_EMBEDDINGS}")
# training for an analysis of the unit embeddings (docs/results.md 7.3): one stage, so the population is
# kept even where it does not beat the MLP on validation, and the embeddings at 10 x lr, so they leave
# their initial noise before the forecasts peak (real Triplett assemblies 0.68 within fish vs chance 0.49)
EMBEDDING_ANALYSIS = {"mlp_warmup": False, "embedding_lr_scale": 10.0}
_FACTOR = f"{EMBEDDING_ANALYSIS['embedding_lr_scale']:g}"
EMBEDDING_ANALYSIS_HOW = (f"--no-mlp-warmup --embedding-lr-scale {_FACTOR} (in the Training dock: untick "
                          f"'MLP warm-up' and set 'embedding lr' to {_FACTOR} × the lr)")
# None for steps/val_every: chosen from the data when the run starts (default_train_steps, auto_val_every)
TRAIN_DEFAULTS = {"steps": None, "lr": 3e-4, "batch_size": 64, "val_every": None, "max_val_windows": None,
                  "embedding_lr_scale": EMBEDDING_LR_SCALE}
# finetuning validates every 20 steps, so on a bounded, evenly spread sample of the val windows
# (max_val_windows=None validates on all of them)
FINETUNE_DEFAULTS = {"steps": 2000, "lr": 3e-4, "batch_size": 64, "val_every": 20, "max_val_windows": 64,
                     "embedding_lr_scale": 1.0}

# the paper's step budgets (appendix C.1): multi-session runs train twice as long
TRAIN_STEPS = {"single_session": 5000, "multi_session": 10000}
# validation cadence: at least this many validations per pass over the training windows, and never
# fewer than one per VAL_EVERY_MAX steps (so small data never skips its best checkpoint)
VALIDATIONS_PER_EPOCH = 4
VAL_EVERY_MAX = 100
# early stopping: stop after this many validations in a row without a new best (0: never stop early),
# and no sooner than PATIENCE_MIN_STEPS after the best (tiny data validates every step: 10 validations
# would be ~1 epoch, and the MLP still improves after that on the FISSA example)
PATIENCE = 10
PATIENCE_MIN_STEPS = 200
# learning-rate factor for the population conditioning (encoder, embeddings, FiLM maps) against the
# per-unit MLP (``--cond-lr-scale``). 1: one rate, as the reference. 0.3 delays POCO's overfitting on
# small data but did not win everywhere (docs/results.md section 7.2), so it is an option only.
COND_LR_SCALE = 1.0
# MLP warm-up (``--mlp-warmup``, on by default): stage 1 trains only the MLP of a FiLM model (POCO, mlp_transformer) with
# its conditioning frozen at alpha = 1, beta = 0, so the model computes exactly its own MLP, until the
# validation stops improving (patience) or MLP_WARMUP_FRACTION of the steps have run; stage 2 trains
# everything from stage 1's best, a stage-2 checkpoint kept only if clearly better (MLP_WARMUP_SE).
# Why the default (docs/results.md section 7.2): trained in one stage, POCO overfits its conditioning
# within about one pass on small data and loses to its own MLP (drift -0.088, FISSA -0.038); with the
# warm-up and the 1-SE rule it meets POCO >= its MLP - 0.01 on all four small sets, and on the synthetic
# cohort (5 sessions, 740 units) stage 2 is kept, with the same test score as one stage and unit
# embeddings that recover the regions (section 7.3). Its cost: on the full Triplett sessions one stage
# beats the MLP by 0.008 and the warm-up keeps the MLP. ``--no-mlp-warmup`` is the reference's procedure.
# 0.75: on a 2,000-step budget the MLP still improves after half of it.
MLP_WARMUP = True
MLP_WARMUP_FRACTION = 0.75
# stage 2 replaces the warmed-up MLP only if its validation MSE is lower by more than this many
# standard errors of the paired difference (the one-standard-error rule: prefer the simpler model
# unless the data show the richer one is better); 0 takes any lower validation MSE
MLP_WARMUP_SE = 1.0


def default_train_steps(n_sessions: int) -> int:
    """The paper's budget for a run over ``n_sessions`` sessions."""
    return TRAIN_STEPS["multi_session" if n_sessions > 1 else "single_session"]


def auto_val_every(steps_per_epoch: float) -> int:
    """Validate ``VALIDATIONS_PER_EPOCH`` times per epoch, at least every ``VAL_EVERY_MAX`` steps."""
    return int(max(1, min(VAL_EVERY_MAX, steps_per_epoch // VALIDATIONS_PER_EPOCH)))

# cross-validated choice (``--cv-folds K``, off by default): POCO's MLP alone and POCO in one stage train
# on each of K blocked folds of the train + val frames, and the one with the lower mean validation MSE is
# kept (training/crossval.py). Why an option (docs/results.md 7.2): on the four small sets it picked the
# model better on test in all 12 runs, keeping POCO's +0.008 on the full Triplett sessions that the warm-up
# gives up, but it costs 2K trainings (about 3-4x the default's time there, K = 4).
CV_FOLDS = 0
CV_FOLDS_SUGGESTED = 4
# after the default split's two runs, stop if one candidate's pooled validation MSE is lower by more than
# this many standard errors of the paired difference (`validation.paired_improvement`, blocks one horizon
# long): a difference that large is not the noise cross-validation guards against, so the 2K - 2 trainings
# left are skipped (None: run them all).
# 2 (docs/results.md 7.2): where the folds were needed -- the FISSA example, whose default split prefers the
# model worse on test, and the full Triplett sessions, where it cannot see POCO's gain -- the default split's
# runs are within 1.3 standard errors; drift, the short Triplett sessions (MLP) and the synthetic cohort
# (POCO) are 4.5-12.5 apart and settle there, each with the choice every fold gives, in 2 runs instead of 8.
CV_DECISIVE_SE = 2.0
