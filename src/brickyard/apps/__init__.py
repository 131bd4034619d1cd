"""Apps: web apps and MCP servers deployed from workspace folders, supervised by the server and reached through
it at ``/apps/<name>/`` with app or user authorization. See :mod:`._service`."""

from ._service import Apps
from ._spec import SCOPES, scope_allows

__all__ = ["SCOPES", "Apps", "scope_allows"]
