"""DistributedDataParallel on CPU (gloo): ranks stay identical, the loss falls, rank 0 writes."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from test_train_support import FAST, TINY_POCO, cohort, prepared

from poco_core.training.defaults import MLP_WARMUP_FRACTION

STEPS = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    from poco_core.models import build_model
    from poco_core.training.distributed import DistContext
    from poco_core.training.train import session_specs, train_events

    data = prepared(cohort()[:2])
    torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
    model = build_model("poco", session_specs(data), **TINY_POCO)
    with DistContext.from_env("cpu") as ctx:
        events = list(train_events(data, model, checkpoint=Path(out) / "m.pt", steps=STEPS, val_every=STEPS,
                                   lr=3e-3, dist=ctx, **FAST))
    torch.save({"losses": [e["loss"] for e in events if e["type"] == "step"],
                "saved": [e["step"] for e in events if e["type"] == "checkpoint"],
                "state": model.state_dict()}, Path(out) / f"rank{rank}.pt")


@pytest.mark.slow
def test_two_gloo_ranks_stay_identical_and_learn(tmp_path):
    mp.spawn(worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    # only rank 0 writes checkpoints (at validations: the end of the default MLP warm-up and the last step)
    assert r0["saved"] and set(r0["saved"]) <= {int(STEPS * MLP_WARMUP_FRACTION), STEPS} and r1["saved"] == []
    assert r0["losses"] != r1["losses"]  # each rank drew its own batches
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), k
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    first = mean(r0["losses"][:5] + r1["losses"][:5])
    last = mean(r0["losses"][-5:] + r1["losses"][-5:])
    assert last < 0.8 * first


@pytest.mark.slow
@pytest.mark.parametrize("nodes", [1, 2])
def test_torchrun_entry_point(tmp_path, nodes):
    """Two CPU ranks under torchrun: one launcher with two processes, or two launchers as two
    "nodes" (--nnodes 2, one process each, static rendezvous on 127.0.0.1), as on a cluster."""
    from poco_core.data.io import save_recording
    from poco_core.training.restore import load_model

    files = []
    for rec in cohort()[:2]:
        files.append(str(tmp_path / f"{rec.session}.h5"))
        save_recording(rec, files[-1])
    sets = [a for k, v in TINY_POCO.items() if k not in ("context", "horizon") for a in ("--set", f"{k}={v}")]
    train = ["-m", "poco_core.cli.train", *files, "--steps", "4", "--val-every", "2", "--out", str(tmp_path / "m.pt"),
             "--context", "12", "--horizon", "4", "--block-len", "200", "--batch-size", "8", "--device", "cpu",
             "--max-val-windows", "16", "--json", *sets]
    port = free_port()
    launch = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={nodes}", f"--nproc-per-node={2 // nodes}",
              "--master-addr=127.0.0.1", f"--master-port={port}"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([*launch, f"--node-rank={node}", *train], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for node in range(nodes)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    done = [line for out, _ in outs for line in out.splitlines() if '"type": "done"' in line]
    assert len(done) == 1  # rank 0 alone reports
    start = next(line for line in outs[0][0].splitlines() if '"type": "start"' in line)
    assert '"world_size": 2' in start
    assert load_model(tmp_path / "m.pt").poco_meta.step in (2, 4)
