"""SQL on the workspace: the engine (DuckDB over Delta, checked by the catalog) and statements."""

from ._engine import Result, SqlEngine
from ._queries import SavedQueries
from ._statements import StatementStore

__all__ = ["Result", "SavedQueries", "SqlEngine", "StatementStore"]
