"""Vector Search: endpoints, Delta Sync and Direct Access indexes, ANN / full-text / hybrid queries."""

from ._engine import Engine
from ._filters import compile_filters
from ._live import RRF_K
from ._query import rrf
from ._service import VectorSearch
from ._store import RowStore

__all__ = ["RRF_K", "Engine", "RowStore", "VectorSearch", "compile_filters", "rrf"]
