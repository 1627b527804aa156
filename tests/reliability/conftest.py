"""Shared pieces of the fault-injection tests: tiny recordings and a tiny trained checkpoint,
the in-process `poco` runner, and the check that every pre-existing file is byte-identical.

Every test here states (1) the exit code, (2) that the message names the file, (3) that what
was on disk before is unchanged (``Snapshot.assert_unchanged``) and no temp file is left.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

import poco_core.cli.main as cli
from poco_core.data.io import save_recording
from poco_core.data.simulate import simulate_cohort

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "tests" / "data" / "suite2p_sim"  # a real suite2p 1.1.0 run (see tests/data/SOURCES.md)
TINY = dict(context=12, horizon=4, hidden=32, d_model=16, self_attn_heads=2, self_attn_head_dim=8, cross_head_dim=8,
            ff_mult=2)
SETS = [a for k, v in TINY.items() if k not in ("context", "horizon") for a in ("--set", f"{k}={v}")]
TRAIN_FAST = ["--context", "12", "--horizon", "4", "--block-len", "200", "--batch-size", "8", "--max-val-windows", "16",
              "--device", "cpu", *SETS]


def tiny_cohort(seed: int = 0, n: int = 2):
    return simulate_cohort(n, n_rois=12, n_frames=600, seed=seed, sigma_j=0.1)


class Snapshot:
    """SHA-256 of every file under a folder, to assert nothing that was there changed."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.hashes = self._scan()

    def _scan(self) -> dict[Path, str]:
        return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in self.folder.rglob("*") if p.is_file()}

    def assert_unchanged(self, allow_new: bool = True) -> None:
        now = self._scan()
        for path, digest in self.hashes.items():
            assert path in now, f"{path} was removed"
            assert now[path] == digest, f"{path} changed"
        new = set(now) - set(self.hashes)
        leftovers = [p for p in new if p.name.endswith(".tmp") or p.name.endswith(".lock")]
        assert not leftovers, f"temp or lock files left behind: {leftovers}"
        if not allow_new:
            assert not new, f"new files: {sorted(new)}"


@pytest.fixture()
def poco(capsys):
    """Run `poco ARGS...` in process: (exit code, stdout, stderr); argparse errors give exit 2 too."""

    def run(*argv) -> tuple[int, str, str]:
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exc:  # argparse: usage error
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def base(tmp_path_factory) -> dict[str, Path]:
    """Two tiny recordings and a checkpoint trained on them (8 steps), made once per session."""
    folder = tmp_path_factory.mktemp("base")
    paths = []
    for rec in tiny_cohort():
        paths.append(save_recording(rec, folder / f"{rec.session}.h5"))
    ckpt = folder / "model.pt"
    code = cli.main(["train", *map(str, paths), "--steps", "4", "--val-every", "2", "--out", str(ckpt), *TRAIN_FAST])
    assert code == 0
    return {"rec1": paths[0], "rec2": paths[1], "ckpt": ckpt, "folder": folder}


@pytest.fixture()
def work(tmp_path, base) -> dict[str, Path]:
    """Copies of the base files in this test's own folder, with a snapshot taken."""
    out = {}
    for key in ("rec1", "rec2", "ckpt"):
        out[key] = tmp_path / base[key].name
        out[key].write_bytes(base[key].read_bytes())
    out["dir"] = tmp_path
    return out


@pytest.fixture()
def suite2p(tmp_path) -> Path:
    """A copy of the suite2p fixture this test may damage."""
    folder = tmp_path / "s2p"
    shutil.copytree(SIM, folder)
    return folder


@pytest.fixture()
def snap(tmp_path):
    """Call after the test's inputs exist: ``s = snap()``; later ``s.assert_unchanged()``."""
    return lambda: Snapshot(tmp_path)


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


POCO_CMD = [sys.executable, "-m", "poco_core.cli.main"]
