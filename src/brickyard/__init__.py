"""Brickyard: the Databricks Mosaic AI stack as local-first open software.

``import brickyard`` is light; heavy modules load when first used::

    from brickyard import Workspace
    ws = Workspace.open("./.brickyard")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Settings", "Workspace", "__version__"]

if TYPE_CHECKING:
    from .core.settings import Settings
    from .workspace import Workspace


def __getattr__(name: str) -> Any:
    if name == "Workspace":
        from .workspace import Workspace

        return Workspace
    if name == "Settings":
        from .core.settings import Settings

        return Settings
    raise AttributeError(f"module 'brickyard' has no attribute {name!r}")
