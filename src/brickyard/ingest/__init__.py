"""Ingestion: parse documents (in a sandboxed subprocess) into ``ai_parse_document``-shaped elements,
chunk them, and land the chunks in a Delta table with the change data feed on."""

from ._chunk import STRATEGIES, Chunk, Options, chunk
from ._pipeline import (
           BUILD_FOLDERS,
           CHUNK_SCHEMA,
           Report,
           Selection,
           files_under,
           glob_regex,
           ingest,
           select_files,
)
from ._sandbox import parse_blobs, parse_bytes, parse_file

__all__ = ["BUILD_FOLDERS", "CHUNK_SCHEMA", "STRATEGIES", "Chunk", "Options", "Report", "Selection", "chunk",
           "files_under", "glob_regex", "ingest", "parse_blobs", "parse_bytes", "parse_file", "select_files"]
