"""Suite-wide settings: one torch thread per test process.

On a 2-core machine two torch threads in tiny models mostly wait on each other (measured 30x
slower per step), and one thread keeps CPU results repeatable.
"""
import torch

torch.set_num_threads(1)

import os  # noqa: E402
import tempfile  # noqa: E402

# precision="auto" caches its measured choice per machine; keep the suite's out of the user's home
os.environ.setdefault("POCO_CACHE_DIR", tempfile.mkdtemp(prefix="poco-test-cache-"))
