#!/bin/bash
# Issue 20's GPU figures, prepared for a machine with a CUDA GPU (none was lent to this work).
# Run from the repository root: bash benchmarks/gpu_issue20.sh [OUT_DIR]; about 5 minutes.
# Writes the bench_models table (fp32 training, then bf16 autocast training) and the machine.
set -euo pipefail
out=${1:-docs/bench/gpu}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.csv"
python -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" > "$out/torch.txt"
python benchmarks/bench_models.py --device cuda --json-out "$out/bench_fp32.jsonl" | tee "$out/bench_fp32.txt"
python benchmarks/bench_models.py --device cuda --train-precision bf16 --json-out "$out/bench_bf16.jsonl" \
    | tee "$out/bench_bf16.txt"
# the latent-space decoder against the modules' plain path, and bf16 autocast, on the GPU
python - <<'PY' | tee "$out/decoder_check.txt"
import torch
from poco_core.models import SessionSpec, build_model
m = build_model("poco", [SessionSpec("a", "a", [f"u{i}" for i in range(2000)])]).cuda().eval()
e = m.encoder
q = torch.randn(2000, 128, device="cuda")
lat = torch.randn(4, 8, 128, device="cuda")
with torch.no_grad():
    fast = e.decode(lat, e.query_terms(q))
    out = q + e.dec_atn(q, lat, (e.query_cos, e.query_sin), (e.lat_x_cos, e.lat_x_sin))
    plain = out + e.dec_ffn(out)
print("max |fast - plain| / max |plain| =", float((fast - plain).abs().max() / plain.abs().max()))
PY
