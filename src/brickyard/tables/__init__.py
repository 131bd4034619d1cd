"""Delta tables and volumes: the workspace's data, stored under its home directory."""

from ._delta import Tables, WriteResult, conform, governs
from ._types import columns_to_schema, parse_type, schema_to_columns, type_text
from ._volumes import FileInfo, Files, FileTree, Volumes, below, check_parts, split_volume_path

__all__ = [
    "FileInfo",
    "Tables",
    "Files",
    "FileTree",
    "Volumes",
    "below",
    "check_parts",
    "WriteResult",
    "columns_to_schema",
    "conform",
    "governs",
    "parse_type",
    "schema_to_columns",
    "split_volume_path",
    "type_text",
]
