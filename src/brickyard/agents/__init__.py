"""Agents and tools: the agent runtime, Unity Catalog function and vector-search tools, an MCP client for
external servers, and the managed MCP servers Brickyard serves."""

from ._mcp_server import ManagedMCP

__all__ = ["ManagedMCP"]
