"""Benchmark task suites (TOML files), loaded by ``pagoda_inverse.bench``."""
