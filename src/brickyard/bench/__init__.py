"""Benchmarks that print JSON (``brickyard bench ...``); performance is checked here, never by timed tests."""

from ._gateway import run_gateway_bench
from ._serving import run_serving_bench
from ._tracing import run_tracing_bench
from ._vectorsearch import run_vectorsearch_bench

__all__ = ["run_gateway_bench", "run_serving_bench", "run_tracing_bench", "run_vectorsearch_bench"]
