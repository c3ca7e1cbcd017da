"""Benchmarks: each ``bench_*.py`` module exposes ``main()`` and prints its figures."""
