"""Benchmarks: each writes a table under docs/benchmarks/ (never timed in tests)."""
