"""``compat="curbd2020"``: the 2020 reference code's behaviour, for golden parity tests only.

Reproduces, in this project's own code, the three deviations of rajanlab/CURBD's trainer that
shared/CIRCUIT_SPEC.md section 7 lists, so a fit can be compared number for number with outputs the
reference produced offline (tests/data/curbd2020_golden.npz): (a) a float accumulator decides when to
learn (it fires late when dtRNN does not add up to dtData exactly); (b) the rate stored at step n is
phi(x) before the n-th update, so training and pVar pair lagged rates with the data; x(0) = d(0).
Random draws follow the reference's order on numpy's legacy generator: the plastic-set permutation,
the white noise (N x steps), then J0. Resets are refused (the Python reference crashes on them).
Use the default (aligned) mode for any real fit.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from poco_core.base.errors import Cancelled, PocoError
from poco_core.base.events import CancelLike, Event, is_cancelled


@dataclass
class Curbd2020Fit:
    """A finished compat fit: weights, RLS matrix, plastic-set order, per-run history, last free run's
    rates at the frames (T, N) and chi2."""

    J: np.ndarray
    J0: np.ndarray
    P: np.ndarray
    order: np.ndarray
    history: list[dict[str, float]]
    rates: np.ndarray
    chi2: float


@dataclass
class Draws:
    """The reference's random draws, in its order: plastic-set order, frozen input (steps, N), J0."""

    order: np.ndarray
    inputs: np.ndarray
    J0: np.ndarray


def n_steps(n_frames: int, dt_data: float, f: int) -> int:
    """RNN steps as the reference lays them out: a float range from 0 to the last frame's time."""
    dt_rnn = dt_data / f
    return len(np.arange(0, dt_data * (n_frames - 1) + dt_rnn, dt_rnn))


def draws(n: int, steps: int, dt_rnn: float, g: float, amp_in: float, tau_wn: float, seed: int) -> Draws:
    """Permutation, OU input (h_0 = 1, h_t = w_t + (h_{t-1} - w_t) e^{-dtRNN/tau_wn}, times amp), J0 ~ N(0, g^2/N)."""
    rng = np.random.RandomState(seed)
    order = rng.permutation(n)
    w = math.sqrt(tau_wn / dt_rnn) * rng.randn(n, steps)
    decay = np.exp(-(dt_rnn / tau_wn))
    h = np.ones((n, steps))
    for t in range(1, steps):
        h[:, t] = w[:, t] + (h[:, t - 1] - w[:, t]) * decay
    j0 = g * rng.randn(n, n) / math.sqrt(n)
    return Draws(order, (amp_in * h).T.copy(), j0)


def frame_steps(n_frames: int, dt_data: float, f: int, steps: int) -> np.ndarray:
    """The step read for each data frame when scoring: the nearest RNN time (the reference's sampling)."""
    t_rnn = np.arange(0, dt_data * (n_frames - 1) + dt_data / f, dt_data / f)[:steps]
    return np.array([int(np.abs(t_rnn - dt_data * k).argmin()) for k in range(n_frames)])


def fit_curbd2020(d: np.ndarray, dt_data: float, config, f: int,
                  cancel: CancelLike | None = None) -> Iterator[Event]:
    """Fit targets d (T, N) the 2020 reference's way (``config``: a CircuitConfig); yields ``step``/``validation`` events like
    ``fit_rnn`` and returns a :class:`Curbd2020Fit`. ``history`` holds each training run's pVar and
    chi2 as the reference reports them; the last row adds the (last) free run's ``pvar_free``, ``chi2_free``."""
    if config.reset_every or config.phi != "tanh" or config.target != "rates" or config.plastic_fraction != 1:
        raise PocoError("compat='curbd2020' reproduces CURBD only: tanh rates, p = 1, no resets")
    d = np.asarray(d, dtype=np.float64)
    t_frames, n = d.shape
    dt_rnn = dt_data / f
    steps = n_steps(t_frames, dt_data, f)
    rnd = draws(n, steps, dt_rnn, config.g, config.amp_in, config.tau_wn, config.seed)
    J, P, order = rnd.J0.copy(), config.p0 * np.eye(n), rnd.order
    sample = frame_steps(t_frames, dt_data, f, steps)
    var = d.var()
    history: list[dict[str, float]] = []
    t0 = time.monotonic()
    n_runs = config.n_train + config.n_free
    rates = np.empty((steps, n))
    for run in range(n_runs):
        learn = run < config.n_train
        x = d[0].copy()
        rates[0] = np.tanh(x)
        t_learn, k, chi2 = 0.0, 0, 0.0
        for step in range(1, steps):
            if is_cancelled(cancel):
                raise Cancelled("circuit fit cancelled")
            t_learn += dt_rnn
            r = np.tanh(x)  # (b): the rate before this step's update
            rates[step] = r
            x = x + dt_rnn * (-x + (J.dot(r) + rnd.inputs[step])) / config.tau_s
            if t_learn >= dt_data:  # (a): float accumulator
                t_learn = 0.0
                e = r - d[k]
                k += 1
                chi2 += float(np.mean(e ** 2))
                if learn:
                    r_s = r[order]
                    q = P.dot(r_s)
                    c = 1.0 / (1.0 + r_s.dot(q))
                    P = P - c * np.outer(q, q)
                    J[:, order] = J[:, order] - c * np.outer(e, q)
        pv = 1 - float(np.sum((d - rates[sample]) ** 2)) / (d.size * var)
        if learn:
            history.append({"run": run + 1, "chi2": chi2, "pvar_online": pv})
            yield {"type": "step", "step": run + 1, "total_steps": config.n_train, "loss": chi2, "pvar_online": pv,
                   "eta_s": (time.monotonic() - t0) / (run + 1) * (config.n_train - run - 1)}
        else:
            if history:
                history[-1].update(pvar_free=pv, chi2_free=chi2)
            yield {"type": "validation", "step": config.n_train, "pvar_free": pv}
    return Curbd2020Fit(J, rnd.J0, P, order, history, rates[sample], chi2)
