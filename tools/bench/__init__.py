"""Benchmarks of the data tools, run through ``qwen-bench`` (figures go to docs/benchmarks.md)."""
