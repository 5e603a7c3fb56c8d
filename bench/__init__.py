"""Benchmarks that print ratios measured in one interleaved run (DESIGN 7). `python -m bench --help`."""
