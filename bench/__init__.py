"""Benchmarks; run as modules (python -m bench.engine), never imported by the service."""
