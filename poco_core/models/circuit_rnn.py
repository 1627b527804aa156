"""Data-constrained rate RNN fitted by recursive least squares (FORCE-RLS): the core of PINning and CURBD.

One unit per recorded neuron: tau dx/dt = -x + J phi(x) + h(t), forward Euler with f sub-steps per
data frame (dtRNN = dtData / f). At every frame that is not a reset frame the plastic columns
J[:, S] take one RLS step towards the data (shared/CIRCUIT_SPEC.md section 6, the aligned order: the
rate stored and learned at frame k is phi(x(t_k)), not the one a step late; resets at any frame).
P = (I/P0 + sum r_S r_S^T)^-1 is one |S| x |S| matrix shared by all rows, created once, kept in fp64.

The frozen input h is an Ornstein-Uhlenbeck process regenerated every run from counter-keyed
random blocks (seed, block), so no N x T*f trajectory is ever stored. The Python loop runs with BLAS
and torch pinned to one thread: these level-2 operations slow down 2-40x with two threads on a
shared 2-core machine (spec section 9).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np
import torch
from scipy.signal import lfilter

from poco_core.base.device import resolve_device
from poco_core.base.errors import Cancelled, PocoError
from poco_core.base.events import CancelLike, Event, is_cancelled

BLOCK_FRAMES = 64  # frames of input generated at once
# cost model, measured by benchmarks/circuit_cost.py on this project's shared 2-core CPU under load
# (docs/performance.md); a quiet machine is 3-5x faster (spec section 12 lists such figures)
PYTHON_STEP_S = 1.5e-4  # Python + dispatch per RNN step
FORWARD_S_PER_ENTRY = 1.5e-9  # J r, fp64, one BLAS thread
UPDATE_S_PER_ENTRY = 3.0e-9  # one rank-1 down-date of J[:, S] or P, per entry


@dataclass
class CircuitConfig:
    """Fit settings (spec section 3, poco_core column). p = plastic_fraction: 1 is CURBD, < 1 PINning."""

    tau_s: float = 0.1
    g: float = 1.5
    plastic_fraction: float = 1.0
    p0: float = 1.0
    n_train: int = 500
    n_free: int = 1
    free_every: int = 10
    amp_in: float = 0.01
    tau_wn: float = 0.1
    noise: float = 0.0
    target: Literal["rates", "currents"] = "rates"
    phi: Literal["tanh", "logistic"] = "tanh"
    x0: Literal["inverse", "data"] = "inverse"
    reset_every: int = 0
    dt_factor: int | None = None
    seed: int = 0
    dtype: Literal["auto", "float64", "float32"] = "auto"
    device: str = "auto"
    compat: Literal["none", "curbd2020"] = "none"  # "curbd2020": the reference's timing, parity tests only

    def __post_init__(self) -> None:
        if not 0 < self.plastic_fraction <= 1:
            raise PocoError(f"plastic fraction p must be in (0, 1], got {self.plastic_fraction}")
        if self.tau_s <= 0 or self.p0 <= 0 or self.n_train < 0 or self.n_free < 1:
            raise PocoError("tau_s and p0 must be positive, n_train >= 0 and n_free >= 1")
        if self.target == "currents" and self.phi != "logistic":
            raise PocoError("current targets use the logistic phi (targets in [0, 1])")
        for name, allowed in (("target", ("rates", "currents")), ("phi", ("tanh", "logistic")),
                              ("x0", ("inverse", "data")), ("dtype", ("auto", "float64", "float32")),
                              ("compat", ("none", "curbd2020"))):
            if getattr(self, name) not in allowed:
                raise PocoError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CircuitConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def dt_factor(dt_data: float, config: CircuitConfig) -> int:
    """Sub-steps per frame: as set, else ceil(10 dtData / tau) so that dtRNN <= tau / 10."""
    if config.dt_factor is not None:
        if config.dt_factor < 1:
            raise PocoError(f"dt_factor must be >= 1, got {config.dt_factor}")
        return config.dt_factor
    return max(1, math.ceil(10 * dt_data / config.tau_s - 1e-9))


def n_plastic(n: int, config: CircuitConfig) -> int:
    return max(1, round(config.plastic_fraction * n))


def estimate_cost(n: int, t: int, dt_data: float, config: CircuitConfig) -> dict[str, float]:
    """Memory (bytes) and CPU seconds of a fit before it starts (spec section 12 cost model)."""
    s = n_plastic(n, config)
    f = dt_factor(dt_data, config)
    nbytes = 8 * (2 * n * n + s * s) + 8 * 3 * n * t  # J, J0, P; data, rates, inputs at frames
    forward = t * f * (PYTHON_STEP_S + FORWARD_S_PER_ENTRY * n * n)
    update = t * UPDATE_S_PER_ENTRY * (n * s + s * s)
    runs = config.n_train + config.n_free + config.n_train // max(config.free_every, 1)
    return {"bytes": float(nbytes), "seconds": float(config.n_train * (forward + update) + (runs - config.n_train) * forward),
            "seconds_per_run": float(forward + update), "dt_factor": float(f), "n_plastic": float(s)}


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS (numpy's and torch's) limited to one thread inside, restored after."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


class FrozenInput:
    """The OU input h_n for steps n = 0 .. (T-1) f, identical in every run (keyed by seed and block).

    h_0 = amp; h_n = w_n + (h_{n-1} - w_n) exp(-dtRNN / tau_wn), w_n ~ N(0, tau_wn / dtRNN), times amp
    (stationary std amp / sqrt(2))."""

    def __init__(self, n: int, n_frames: int, f: int, dt_rnn: float, config: CircuitConfig, device, dtype):
        self.n, self.n_frames, self.f = n, n_frames, f
        self.amp, self.seed = config.amp_in, config.seed
        self.decay = math.exp(-dt_rnn / config.tau_wn)
        self.w_std = math.sqrt(config.tau_wn / dt_rnn)
        self.device, self.dtype = device, dtype

    def blocks(self) -> Iterator[tuple[int, torch.Tensor]]:
        """(first frame, (frames, f, N) tensor) blocks in order; all zeros when amp is 0."""
        prev = None
        for b, k0 in enumerate(range(0, self.n_frames, BLOCK_FRAMES)):
            k1 = min(k0 + BLOCK_FRAMES, self.n_frames)
            if self.amp == 0:
                yield k0, torch.zeros((k1 - k0, self.f, self.n), device=self.device, dtype=self.dtype)
                continue
            rng = np.random.default_rng([self.seed, 7717, b])
            w = rng.standard_normal(((k1 - k0) * self.f, self.n)) * self.w_std
            a = self.decay
            if prev is None:  # step 0 is h_0 = 1 exactly
                rest = lfilter([1 - a], [1, -a], w[1:], axis=0, zi=np.full((1, self.n), a))[0]
                h = np.vstack([np.ones((1, self.n)), rest])
            else:
                h = lfilter([1 - a], [1, -a], w, axis=0, zi=(a * prev)[None])[0]
            prev = h[-1]
            yield k0, torch.as_tensor(self.amp * h.reshape(k1 - k0, self.f, self.n), device=self.device, dtype=self.dtype)

    def frames(self) -> np.ndarray:
        """(T, N) input at the frames (the "external" current of the decomposition)."""
        return np.concatenate([blk[:, 0].cpu().numpy() for _, blk in self.blocks()])


def phi_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    return torch.tanh if name == "tanh" else torch.sigmoid


def phi_inverse(d: torch.Tensor, name: str) -> torch.Tensor:
    """phi^-1 of targets already clipped inside phi's range."""
    return torch.atanh(d) if name == "tanh" else torch.logit(d)


def current_targets(d: torch.Tensor) -> torch.Tensor:
    """f = log((d + 0.01) / (1 - d + 0.01)): the regularised phi^-1 the PINning demo learns currents on."""
    return torch.log((d + 0.01) / (1 - d + 0.01))


@dataclass
class RLSState:
    """Everything a fit needs to continue: weights, the RLS matrix, the plastic set and the history."""

    J: torch.Tensor
    J0: torch.Tensor
    P: torch.Tensor
    plastic: torch.Tensor  # (|S|,) int64 presynaptic unit indices
    run: int = 0
    history: list[dict[str, float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"J": self.J.cpu(), "J0": self.J0.cpu(), "P": self.P.cpu(), "plastic": self.plastic.cpu(),
                "run": self.run, "history": list(self.history or [])}

    @classmethod
    def from_dict(cls, d: dict[str, Any], device, dtype) -> RLSState:
        return cls(d["J"].to(device, dtype), d["J0"].to(device, dtype), d["P"].to(device, torch.float64),
                   d["plastic"].to(device), int(d["run"]), list(d["history"]))


def resolve_dtype(config: CircuitConfig, device: torch.device) -> torch.dtype:
    if config.dtype == "auto":
        return torch.float64 if device.type == "cpu" else torch.float32
    return getattr(torch, config.dtype)


def init_state(n: int, config: CircuitConfig, device, dtype) -> RLSState:
    """J0 ~ N(0, g^2 / N) (diagonal included), a random plastic set of round(pN) units, P = P0 I."""
    gen = torch.Generator().manual_seed(config.seed)
    j0 = torch.randn((n, n), generator=gen, dtype=torch.float64) * (config.g / math.sqrt(n))
    s = n_plastic(n, config)
    plastic = torch.arange(n) if s == n else torch.sort(torch.randperm(n, generator=gen)[:s]).values
    return RLSState(j0.to(device, dtype).clone(), j0.to(device, dtype),
                    config.p0 * torch.eye(s, dtype=torch.float64, device=device), plastic.to(device), 0, [])


def rls_update(P: torch.Tensor, w: torch.Tensor, r_s: torch.Tensor, e: torch.Tensor) -> None:
    """One RLS step on the plastic weights w = J[:, S] (in place): q = P r_S, c = 1 / (1 + r_S^T q),
    P -= c q q^T, w -= c e q^T."""
    r64 = r_s.to(torch.float64)
    q = torch.mv(P, r64)
    qc = q / (1.0 + torch.dot(r64, q))
    P.addr_(qc, q, alpha=-1.0)
    w.addr_(e, qc.to(e.dtype), alpha=-1.0)


@dataclass
class RunResult:
    rates: torch.Tensor  # (T, N) phi(x(t_k))
    chi2: float


def run_network(state: RLSState, d: torch.Tensor, config: CircuitConfig, f: int, dt_rnn: float,
                inputs: FrozenInput, learn: bool, cancel: CancelLike | None = None,
                noise_gen: torch.Generator | None = None) -> RunResult:
    """One pass over the data (the aligned order of spec section 6); learns when ``learn``."""
    t_frames = d.shape[0]
    phi = phi_fn(config.phi)
    targets = current_targets(d) if config.target == "currents" else None
    start = lambda k: phi_inverse(d[k], config.phi) if config.x0 == "inverse" else d[k].clone()
    a = dt_rnn / config.tau_s
    full = state.plastic.numel() == d.shape[1]
    S = state.plastic
    # PINning: the plastic columns learn as one contiguous block (a column scatter into J is slow)
    fixed, w = (state.J, state.J) if full or not learn else (state.J.index_fill(1, S, 0.0), state.J[:, S].contiguous())
    rates = torch.empty_like(d)
    chi2 = torch.zeros((), dtype=torch.float64, device=d.device)
    x = start(0)
    for k0, block in inputs.blocks():
        for i in range(block.shape[0]):
            k = k0 + i
            if is_cancelled(cancel):
                raise Cancelled("circuit fit cancelled")
            reset = k == 0 or (config.reset_every > 0 and k % config.reset_every == 0)
            if reset and k > 0:
                x = start(k)
            for j in range(f if k < t_frames - 1 else 1):
                r = phi(x)
                z = torch.addmv(block[i, j], fixed, r)
                if w is not fixed:
                    z.addmv_(w, r[S])
                if config.noise:
                    z.add_(torch.randn(z.shape, generator=noise_gen, dtype=z.dtype).to(z.device), alpha=config.noise)
                if j == 0:
                    rates[k] = r
                    if learn and not reset:
                        e = r - d[k] if targets is None else z - targets[k]
                        rls_update(state.P, w, r if full else r[S], e)
                        chi2 += (e * e).mean()
                x.mul_(1 - a).add_(z, alpha=a)
            if w is not fixed and (k == t_frames - 1 or is_cancelled(cancel)):
                state.J[:, S] = w  # written back before a cancel is raised at the next frame
    return RunResult(rates, float(chi2))


def pvar(d: torch.Tensor, r: torch.Tensor) -> float:
    """1 - sum (d - r)^2 / (N T var(d)), the variance over all entries."""
    return float(1 - ((d - r) ** 2).sum() / (d.numel() * d.var(unbiased=False)))


def pvar_per_neuron(d: np.ndarray, r: np.ndarray) -> np.ndarray:
    """1 - sum_t (d_it - r_it)^2 / (T var_t d_i) per neuron (NaN for a constant neuron)."""
    var = d.var(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(var > 0, 1 - ((d - r) ** 2).mean(axis=0) / var, np.nan)


def fit_rnn(d: np.ndarray, dt_data: float, config: CircuitConfig, state: dict[str, Any] | None = None,
            cancel: CancelLike | None = None,
            on_checkpoint: Callable[[RLSState], None] | None = None, final_free: bool = True) -> Iterator[Event]:
    """Fit J to targets d (T, N) already in phi's range; yields events and returns (state, free RunResult).

    ``state`` (an ``RLSState.to_dict()``) continues a fit; ``on_checkpoint`` gets the state every
    ``free_every`` runs. Events: ``step`` per training run (run, loss = chi2, pvar_online, eta_s) and
    ``validation`` after each free run (run, pvar_free). ``final_free=False`` skips the last free run
    (returns (state, None)) for callers that score the fit themselves."""
    t_frames, n = d.shape
    f = dt_factor(dt_data, config)
    if config.compat == "curbd2020":
        if state is not None:
            raise PocoError("compat='curbd2020' fits cannot be resumed")
        from poco_core.models.curbd2020 import fit_curbd2020

        with one_blas_thread():
            out = yield from fit_curbd2020(d, dt_data, config, f, cancel)
        to = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
        return (RLSState(to(out.J), to(out.J0), to(out.P), torch.as_tensor(out.order), config.n_train, out.history),
                RunResult(to(out.rates), out.chi2))
    device = resolve_device(config.device)
    dtype = resolve_dtype(config, device)
    dt_rnn = dt_data / f
    dd = torch.as_tensor(np.asarray(d), dtype=dtype, device=device)
    st = init_state(n, config, device, dtype) if state is None else RLSState.from_dict(state, device, dtype)
    if st.J.shape != (n, n):
        raise PocoError(f"the checkpoint holds a fit of {st.J.shape[0]} units, the data has {n}")
    inputs = FrozenInput(n, t_frames, f, dt_rnn, config, device, dtype)
    noise_gen = torch.Generator().manual_seed(config.seed + 1)

    def free_run() -> tuple[RunResult, float]:
        runs = [run_network(st, dd, config, f, dt_rnn, inputs, False, cancel, noise_gen) for _ in range(config.n_free)]
        return runs[-1], float(np.mean([pvar(dd, r.rates) for r in runs]))

    with one_blas_thread(), torch.inference_mode():
        t0 = time.monotonic()
        done_before = st.run
        while st.run < config.n_train:
            res = run_network(st, dd, config, f, dt_rnn, inputs, True, cancel, noise_gen)
            st.run += 1
            per_run = (time.monotonic() - t0) / (st.run - done_before)
            row = {"run": st.run, "chi2": res.chi2, "pvar_online": pvar(dd, res.rates)}
            st.history.append(row)
            yield {"type": "step", "step": st.run, "total_steps": config.n_train, "loss": res.chi2,
                   "pvar_online": row["pvar_online"], "eta_s": per_run * (config.n_train - st.run)}
            if st.run % config.free_every == 0 and st.run < config.n_train:
                _, pv = free_run()
                row["pvar_free"] = pv
                if on_checkpoint is not None:
                    on_checkpoint(st)
                yield {"type": "validation", "step": st.run, "pvar_free": pv}
        if not final_free:
            return st, None
        final, pv = free_run()
    if st.history:
        st.history[-1]["pvar_free"] = pv
    yield {"type": "validation", "step": st.run, "pvar_free": pv}
    return st, final
