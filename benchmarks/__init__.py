"""Benchmarks: each lesson workload timed as its raw PyTorch loop and as its dlbasics run (``python -m benchmarks``).

Not part of the test suite; see benchmarks/README.md.
"""
