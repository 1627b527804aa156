#!/bin/bash
# reduced score check: old tree (exact fp32 path) vs this tree's fast path (fp32), smaller POCO, 150 steps
data=$1; tree=$2
T=/work/shared/data/triplett2018_zebrafish
if [ $data = cohort ]; then IN="/work/wt/perf/sample_data/cohort/manifest.json"; else IN="$T/zf_20151104-f1 $T/zf_20170215-f3"; fi
root=$([ $tree = old ] && echo /tmp/perf_old || echo /tmp/perf_new)
name=small-$data-$tree
cd /tmp/perfwork/score
OMP_NUM_THREADS=1 PYTHONPATH=$root nice -n 5 /work/main/.venv/bin/poco train $IN --steps 150 --batch-size 16 --lr 1e-3 \
  --device cpu --patience 0 --val-every 50 --max-val-windows 64 --seed 0 --json \
  --set hidden=256 --set d_model=64 --set cross_head_dim=32 --set self_attn_heads=4 --set self_attn_head_dim=16 \
  --out /tmp/perfwork/score/$name.pt 2>/tmp/perfwork/score/$name.err > /tmp/perfwork/score/$name.jsonl
python3 -c "
import json
for l in open('/tmp/perfwork/score/$name.jsonl'):
    d = json.loads(l)
    if d.get('type') == 'done': print('$name', d['test'].get('score'), d['best_step'])"
