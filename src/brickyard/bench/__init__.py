"""Benchmarks that print JSON (``brickyard bench ...``); performance is checked here, never by timed tests."""

from ._gateway import run_gateway_bench

__all__ = ["run_gateway_bench"]
