#!/bin/bash
# Reduced score check for a fast path (issue 20): a smaller POCO, 150 steps at batch 16, seed 0,
# one thread; the test score of the run (and of its checkpoint evaluated in exact fp32).
#   bash benchmarks/score_check_small.sh cohort|triplett fp32|bf16 [TREE] [OUTDIR]
# TREE: a checkout whose poco_core to run (default: this one; e.g. `git archive OLD | tar -x -C TREE`);
# triplett reads $POCO_SHARED/data (default ../shared next to the repository).
set -euo pipefail
data=$1; precision=$2
here=$(cd "$(dirname "$0")/.." && pwd)
tree=${3:-$here}; out=${4:-/tmp/poco_score_check}
shared=${POCO_SHARED:-$here/../shared}
T=$shared/data/triplett2018_zebrafish
case $data in
  cohort) IN=("$here/sample_data/cohort/manifest.json") ;;
  triplett) IN=("$T/zf_20151104-f1" "$T/zf_20170215-f3") ;;
  *) echo "data: cohort or triplett" >&2; exit 2 ;;
esac
flag=(); [ "$precision" = bf16 ] && flag=(--bf16)
mkdir -p "$out"; name=small-$data-$precision-$(basename "$tree")
poco=$here/.venv/bin/poco
OMP_NUM_THREADS=1 PYTHONPATH=$tree "$poco" train "${IN[@]}" --steps 150 --batch-size 16 --lr 1e-3 \
  --device cpu --patience 0 --val-every 50 --max-val-windows 64 --seed 0 --json "${flag[@]}" \
  --set hidden=256 --set d_model=64 --set cross_head_dim=32 --set self_attn_heads=4 --set self_attn_head_dim=16 \
  --out "$out/$name.pt" 2>"$out/$name.err" > "$out/$name.jsonl"
OMP_NUM_THREADS=1 PYTHONPATH=$tree "$poco" evaluate "$out/$name.pt" "${IN[@]}" --precision fp32 --json \
  > "$out/$name.eval.json" 2>>"$out/$name.err"
python3 - "$out/$name" <<'PY'
import json, sys
base = sys.argv[1]
done = [d for d in map(json.loads, open(base + ".jsonl")) if d.get("type") == "done"][-1]
fp32 = json.load(open(base + ".eval.json"))["mean"]["score"]
print(f"{base.rsplit('/', 1)[-1]}: test score {done['test'].get('score'):.6f} (the run's own evaluation), "
      f"{fp32:.6f} (checkpoint evaluated in fp32), best step {done.get('best_step')}")
PY
