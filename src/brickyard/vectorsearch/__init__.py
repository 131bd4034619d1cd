"""Vector Search: endpoints, Delta Sync and Direct Access indexes, ANN / full-text / hybrid queries."""

from ._engine import Engine
from ._filters import compile_filters
from ._follow import Indexes, LocalIndexes, Target, follow, index_body
from ._live import RRF_K
from ._query import rrf
from ._service import VectorSearch
from ._store import RowStore

__all__ = ["RRF_K", "Engine", "Indexes", "LocalIndexes", "RowStore", "Target", "VectorSearch", "compile_filters",
           "follow", "index_body", "rrf"]
