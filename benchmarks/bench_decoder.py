"""POCO's decoder alone, in one process, the two ways interleaved (so both see the same machine
load): the latent-space ``PerceiverEncoder.decode`` with a session's cached query terms, against
the plain modules (``q + dec_atn(q, latents)``, then ``+ dec_ffn``). CPU time per call, 1 thread.

    python benchmarks/bench_decoder.py
"""
import statistics
import time

import torch

from _common import set_threads
from poco_core.base.allocator import keep_freed_memory
from poco_core.models import SessionSpec, build_model

keep_freed_memory()
set_threads(1)
for n, b in [(512, 1), (10000, 1), (512, 64)]:
    m = build_model("poco", [SessionSpec("a", "a", [f"u{i}" for i in range(n)])]).eval()
    e = m.encoder
    q = m.embeddings.query("s0").detach(); lat = torch.randn(b, 8, 128)
    with torch.no_grad():
        terms = e.query_terms(q)
        fast = lambda: e.decode(lat, terms)
        def plain():
            out = q + e.dec_atn(q, lat, (e.query_cos, e.query_sin), (e.lat_x_cos, e.lat_x_sin))
            return out + e.dec_ffn(out)
        tf, tp = [], []
        for i in range(60 if b == 1 and n == 512 else 12):
            for f, acc in ((fast, tf), (plain, tp)) if i % 2 else ((plain, tp), (fast, tf)):
                c = time.thread_time(); f(); acc.append(time.thread_time() - c)
    print(f"n={n} B={b}: decoder CPU median fast {1e3*statistics.median(tf):.2f} ms vs plain {1e3*statistics.median(tp):.2f} ms (min {1e3*min(tf):.2f} / {1e3*min(tp):.2f})", flush=True)
