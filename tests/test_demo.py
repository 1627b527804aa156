"""The README's headless demo: trains on the sample cohort and reports POCO against copy."""
from __future__ import annotations

import math

from poco_core import demo


def test_headless_demo_reports_poco_and_copy(capsys):
    scores = demo.run(steps=4)
    out = capsys.readouterr().out
    assert scores["copy"] == 0.0 and math.isfinite(scores["poco"])
    assert "POCO" in out and "copy" in out and "checkpoint:" in out
    assert "4 sessions" in out  # the sample cohort's training animals
