"""Agents and tools: the agent runtime (a ``ResponsesAgent`` with a tool-calling loop), Unity Catalog
function and vector-search tools, an MCP client, and the managed MCP servers Brickyard serves.

The runtime needs mlflow, the OpenAI client and the MCP SDK (the ``agents`` extra); it is loaded on first
use, so the server does not import it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._mcp_server import ExternalMCP, ManagedMCP

__all__ = ["ExternalMCP", "MCPServer", "ManagedMCP", "Tool", "ToolCallingAgent", "VectorSearchRetrieverTool", "uc_function_tools"]

if TYPE_CHECKING:
    from ._runtime import MCPServer, Tool, ToolCallingAgent, VectorSearchRetrieverTool, uc_function_tools


def __getattr__(name: str) -> Any:
    if name in __all__ and name not in ("ExternalMCP", "ManagedMCP"):
        from . import _runtime

        return getattr(_runtime, name)
    raise AttributeError(f"module 'brickyard.agents' has no attribute {name!r}")
