"""Corruption is an error naming the file, never silently different numbers: checksummed project
HDF5, hashed checkpoints, non-finite weights and broken normalisers refused, footprints
bounds-checked, suite2p pickles read with an unpickler that runs no code."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import SIM

from poco_core.training.checkpoint import load_checkpoint, save_checkpoint


def _flip(path: Path, offset: int, n: int = 64) -> None:
    data = bytearray(path.read_bytes())
    for i in range(n):
        data[offset + i] ^= 0xFF
    path.write_bytes(bytes(data))


def _chunk_offset(path: Path, name: str) -> int:
    with h5py.File(path, "r") as f:
        return f[name].id.get_chunk_info(0).byte_offset


@pytest.mark.parametrize("command", ["info", "evaluate"])
def test_flipped_bytes_in_project_h5_traces(poco, work, snap, command):
    _flip(work["rec1"], _chunk_offset(work["rec1"], "traces") + 40)
    s = snap()
    args = ["info", work["rec1"]] if command == "info" else ["evaluate", work["ckpt"], work["rec1"], "--device", "cpu"]
    code, _, err = poco(*args)
    assert code == 2 and str(work["rec1"]) in err and "corrupt" in err
    s.assert_unchanged()


def test_flipped_bytes_in_h5_footprints(poco, work, snap):
    _flip(work["rec1"], _chunk_offset(work["rec1"], "footprints/indices") + 8, 16)
    s = snap()
    code, _, err = poco("info", work["rec1"])
    assert code == 2 and str(work["rec1"]) in err
    s.assert_unchanged()


def test_project_h5_datasets_carry_checksums(work):
    with h5py.File(work["rec1"], "r") as f:
        numeric = [ds for ds in _datasets(f) if ds.dtype.kind in "fiub" and ds.size]
        assert numeric and all(ds.fletcher32 for ds in numeric)


def _datasets(group):
    for item in group.values():
        if isinstance(item, h5py.Dataset):
            yield item
        else:
            yield from _datasets(item)


def _weights_offset(path: Path, needle: torch.Tensor) -> int:
    data = path.read_bytes()
    offset = data.find(needle.numpy().tobytes()[:64])
    assert offset > 0
    return offset


@pytest.mark.parametrize("command", ["evaluate", "forecast", "finetune", "embed"])
def test_flipped_bytes_in_a_checkpoint(poco, work, snap, command):
    ckpt = load_checkpoint(work["ckpt"])
    big = max(ckpt["model"]["state_dict"].values(), key=lambda t: t.numel())
    _flip(work["ckpt"], _weights_offset(work["ckpt"], big.contiguous()), 16)
    s = snap()
    args = {"evaluate": ["evaluate", work["ckpt"], work["rec1"]],
            "forecast": ["forecast", work["ckpt"], work["rec1"], "--t", "20"],
            "finetune": ["finetune", work["ckpt"], work["rec1"], "--steps", "1", "--out", work["dir"] / "ft.pt"],
            "embed": ["embed", work["ckpt"], work["rec1"]]}[command]
    code, _, err = poco(*args)
    assert code == 2 and str(work["ckpt"]) in err and "corrupt" in err
    s.assert_unchanged()


def _rewrite(path: Path, change) -> None:
    d = load_checkpoint(path)
    change(d)
    save_checkpoint(path, d)  # a valid hash over bad content: the content checks must catch it


def test_nan_weights_are_refused(poco, work, snap):
    def nan(d):
        key = next(k for k, v in d["model"]["state_dict"].items() if v.is_floating_point())
        d["model"]["state_dict"][key][...] = float("nan")

    _rewrite(work["ckpt"], nan)
    s = snap()
    code, _, err = poco("evaluate", work["ckpt"], work["rec1"])
    assert code == 2 and str(work["ckpt"]) in err and "NaN" in err
    s.assert_unchanged()


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf")])
def test_broken_normaliser_is_refused(poco, work, snap, bad):
    def zero_std(d):
        st = d["preprocess"]["fish01"]
        st["std"] = torch.full_like(torch.as_tensor(st["std"]), bad)

    _rewrite(work["ckpt"], zero_std)
    s = snap()
    code, _, err = poco("forecast", work["ckpt"], work["rec1"], "--t", "20")
    assert code == 2 and str(work["ckpt"]) in err and "normalis" in err
    s.assert_unchanged()


def test_truncated_checkpoint(poco, work, snap):
    data = work["ckpt"].read_bytes()
    work["ckpt"].write_bytes(data[: len(data) // 2])
    s = snap()
    code, _, err = poco("evaluate", work["ckpt"], work["rec1"])
    assert code == 2 and str(work["ckpt"]) in err
    s.assert_unchanged()


def test_out_of_range_footprint_indices_in_h5(poco, work, snap):
    with h5py.File(work["rec1"], "a") as f:
        idx = f["footprints/indices"][()]
        del f["footprints/indices"]
        idx[-1] = 10**7
        f["footprints"].create_dataset("indices", data=idx)
    s = snap()
    code, _, err = poco("info", work["rec1"])
    assert code == 2 and str(work["rec1"]) in err and "out of range" in err
    s.assert_unchanged()


class _Payload:
    """Unpickling this runs `touch MARKER`: the classic code-execution pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("name", ["stat.npy", "ops.npy"])
def test_crafted_pickle_runs_no_code(poco, suite2p, snap, name):
    marker = suite2p.parent / "PWNED"
    target = suite2p / "suite2p" / "plane0" / name
    arr = np.empty(1 if name == "stat.npy" else (), dtype=object)
    if name == "stat.npy":
        arr[0] = {"ypix": np.array([0]), "xpix": np.array([0]), "evil": _Payload(marker)}
    else:
        arr[()] = {"fs": 30.0, "evil": _Payload(marker)}
    np.save(target, arr, allow_pickle=True)
    s = snap()
    code, _, err = poco("info", suite2p)
    assert code == 2 and name in err and "refused" in err
    assert not marker.exists()
    s.assert_unchanged()


def test_pickle_with_a_foreign_class_is_refused(suite2p):
    from poco_core.base.errors import CorruptFile
    from poco_core.data.io.arrays import load_pickled_npy

    path = suite2p / "x.npy"
    arr = np.empty((), dtype=object)
    arr[()] = {"when": Path("/tmp")}
    np.save(path, arr, allow_pickle=True)
    with pytest.raises(CorruptFile, match="pathlib"):
        load_pickled_npy(path)


def test_real_suite2p_pickles_still_load():
    from poco_core.data.io import load_recording

    rec = load_recording(SIM)
    assert rec.n_rois == 53 and rec.fs == 30.0 and rec.footprints is not None


def test_truncated_pickle(poco, suite2p, snap):
    stat = suite2p / "suite2p" / "plane0" / "stat.npy"
    stat.write_bytes(stat.read_bytes()[:300])
    s = snap()
    code, _, err = poco("info", suite2p)
    assert code == 2 and "stat.npy" in err
    s.assert_unchanged()


def test_out_of_range_suite2p_pixels(poco, suite2p, snap):
    stat_path = suite2p / "suite2p" / "plane0" / "stat.npy"
    stat = np.load(stat_path, allow_pickle=True)
    stat[0]["ypix"] = np.array([10_000])
    stat[0]["xpix"] = np.array([0])
    np.save(stat_path, stat, allow_pickle=True)
    s = snap()
    code, _, err = poco("info", suite2p)
    assert code == 2 and "stat.npy" in err and "outside" in err
    s.assert_unchanged()

