"""REST layer: thin routes over the library, one policy per route, Databricks error bodies."""

from .app import build_api, create_app

__all__ = ["build_api", "create_app"]
