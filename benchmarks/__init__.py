"""Benchmarks: speed and memory of swr-etl against the floor (see benchmarks/run.py)."""
