"""Checkpoints: atomic writes that survive SIGKILL, weights_only loading, clear version errors."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from poco_core.base.errors import CheckpointError
from poco_core.training.checkpoint import (
    FORMAT_VERSION,
    load_checkpoint,
    save_checkpoint,
)


def test_roundtrip_converts_numpy_for_weights_only(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"a": np.arange(3.0), "ids": np.array(["x", "y"]),
                                               "n": np.int64(4), "nested": [{"p": tmp_path}], "t": (1, 2)})
    d = load_checkpoint(path)
    assert torch.equal(d["a"], torch.arange(3.0, dtype=torch.float64))
    assert d["ids"] == ["x", "y"] and d["n"] == 4 and isinstance(d["n"], int)
    assert d["nested"] == [{"p": str(tmp_path)}] and d["t"] == (1, 2)
    assert d["format_version"] == FORMAT_VERSION and "package_version" in d
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind


def test_other_format_version_is_a_clear_error(tmp_path):
    torch.save({"format_version": FORMAT_VERSION + 1, "package_version": "9.9"}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match=r"format 2 .*upgrade"):
        load_checkpoint(tmp_path / "new.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no format_version"):
        load_checkpoint(tmp_path / "other.pt")


def test_missing_corrupt_and_pickled_code_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"format_version": FORMAT_VERSION, "obj": Path("x")}, tmp_path / "pickle.pt")  # arbitrary class
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "pickle.pt")


WRITER = textwrap.dedent("""
    import sys, torch
    from poco_core.training.checkpoint import save_checkpoint
    i = 0
    while True:
        i += 1
        print("writing", i, flush=True)
        save_checkpoint(sys.argv[1], {"i": i, "w": torch.full((3_000_000,), float(i))})
""")


def test_sigkill_mid_write_never_leaves_a_corrupt_checkpoint(tmp_path):
    """SIGKILL a process while it rewrites a 12 MB checkpoint: the file at the path is the last
    complete write, and the leftover is a hidden temp file no loader mistakes for a checkpoint."""
    path = tmp_path / "ckpt.pt"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, env=env, text=True)
    try:
        while proc.stdout.readline().split() != ["writing", "4"]:
            pass
        proc.send_signal(signal.SIGKILL)  # write 4 has just begun
    finally:
        proc.kill()
        proc.wait()
    d = load_checkpoint(path)
    assert d["i"] in (3, 4) and torch.all(d["w"] == float(d["i"]))
    for stray in tmp_path.iterdir():
        if stray != path:
            assert stray.name.startswith(".ckpt.pt.") and stray.name.endswith(".tmp")
