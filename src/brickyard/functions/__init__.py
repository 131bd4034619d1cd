"""Unity Catalog functions: execution as the caller (SQL through the SQL engine, Python in a confined
subprocess), tool specs from signatures, and registering Python functions from code.

Loaded lazily, so the function worker process (``brickyard.functions._worker``) starts without the
rest of Brickyard."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Functions", "tool_name", "tool_spec"]

if TYPE_CHECKING:
    from ._service import Functions, tool_name, tool_spec


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import _service

        return getattr(_service, name)
    raise AttributeError(f"module 'brickyard.functions' has no attribute {name!r}")
