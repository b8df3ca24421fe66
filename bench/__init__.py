"""Throughput measurements behind scripts/benchmark.py (results go to docs/benchmarks.md)."""
