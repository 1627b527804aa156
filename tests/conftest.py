"""Suite-wide settings: one torch thread per test process.

On a 2-core machine two torch threads in tiny models mostly wait on each other (measured 30x
slower per step), and one thread keeps CPU results repeatable.
"""
import torch

torch.set_num_threads(1)
