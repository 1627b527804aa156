"""Write tests/data/checkpoints/poco_v0.1.0_flat.pt: a tiny POCO checkpoint from the release
whose engine was still 25 flat modules (commit 600f63d), so a test can show that checkpoints
written before the move to layer subpackages still load.

Run once with that release checked out: `python scripts/make_legacy_checkpoint.py`.
"""
from pathlib import Path

import poco_core as pc

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "checkpoints" / "poco_v0.1.0_flat.pt"


def main() -> None:
    rec = pc.simulate_recording(n_rois=12, n_frames=400, seed=3)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    run = pc.train([rec], "poco", steps=4, device="cpu", checkpoint=OUT, val_every=2, batch_size=4, seed=0,
                   hidden=32, d_model=16, self_attn_heads=2, self_attn_head_dim=8, cross_head_dim=8)
    run.wait()
    print("wrote", OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
