"""Models measured by the benchmarks in ``bench/``."""
