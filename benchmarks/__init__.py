"""Benchmark scripts, run through ``robot-meta bench <name>``; results go in BENCHMARKS.md."""
