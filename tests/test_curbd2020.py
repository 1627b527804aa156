"""Golden parity with the public CURBD reference (spec section 13 test 3): ``compat="curbd2020"``
reproduces the per-run pVars, chi2s and final J that rajanlab/CURBD's trainer produced on tiny fixed
inputs (tests/data/curbd2020_golden.npz, made offline by scripts/make_curbd_golden.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from poco_core.analysis.circuit import DataPrep, prepare_targets
from poco_core.base.errors import PocoError
from poco_core.models.circuit_rnn import CircuitConfig, fit_rnn

GOLDEN = np.load(Path(__file__).parent / "data" / "curbd2020_golden.npz")


def fit(case: str, **over):
    n, t, dt, f, tau, n_train, n_free, seed, g, p0, tau_wn, amp = GOLDEN[f"{case}/params"]
    # the reference scales by the maximum and clips to +-0.999: DataPrep's "max" scaling, no z-score
    d, _ = prepare_targets(GOLDEN[f"{case}/activity"].T, 1 / dt, DataPrep(standardize="none", scale="max"), "tanh")
    cfg = CircuitConfig(compat="curbd2020", tau_s=tau, dt_factor=int(f), n_train=int(n_train), n_free=int(n_free),
                        seed=int(seed), g=g, p0=p0, tau_wn=tau_wn, amp_in=amp, **over)
    gen = fit_rnn(d, dt, cfg)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


@pytest.mark.parametrize("case", [str(c) for c in GOLDEN["cases"]])
def test_compat_mode_reproduces_the_reference(case):
    state, _ = fit(case)
    rows = state.history
    pvars = [r["pvar_online"] for r in rows] + [rows[-1]["pvar_free"]]
    chi2s = [r["chi2"] for r in rows] + [rows[-1]["chi2_free"]]
    np.testing.assert_allclose(pvars, GOLDEN[f"{case}/pvars"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(chi2s, GOLDEN[f"{case}/chi2s"], rtol=1e-10, atol=0)
    np.testing.assert_allclose(state.J.numpy(), GOLDEN[f"{case}/J"], rtol=0, atol=1e-10)


def test_aligned_default_differs_from_the_reference():
    """The default mode is not the reference's timing: its training pVars differ."""
    from poco_core.models.circuit_rnn import fit_rnn as aligned

    n, t, dt, f, tau, n_train, n_free, seed, g, p0, tau_wn, amp = GOLDEN["late_learning/params"]
    d, _ = prepare_targets(GOLDEN["late_learning/activity"].T, 1 / dt, DataPrep(standardize="none", scale="max"), "tanh")
    gen = aligned(d, dt, CircuitConfig(tau_s=tau, dt_factor=int(f), n_train=int(n_train), seed=int(seed)))
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        state = stop.value[0]
    assert abs(state.history[0]["pvar_online"] - GOLDEN["late_learning/pvars"][0]) > 1e-3


def test_compat_refuses_what_the_reference_cannot_do():
    from poco_core.analysis.circuit import fit_circuit
    from poco_core.data.recording import Recording

    with pytest.raises(PocoError):
        fit("smooth", reset_every=10)
    rec = Recording(GOLDEN["smooth/activity"].T, fs=100.0, roi_ids=[f"u{i}" for i in range(20)])
    with pytest.raises(PocoError, match="parity"):
        fit_circuit(rec, 1.0, compat="curbd2020", n_train=1)
