"""Benchmark task suites, metrics, the run engine and the report writer (``pagoda-inv bench``)."""
