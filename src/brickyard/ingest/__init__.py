"""Ingestion: parse documents (in a sandboxed subprocess) into ``ai_parse_document``-shaped elements,
chunk them, and land the chunks in a Delta table with the change data feed on."""

from ._chunk import STRATEGIES, Chunk, Options, chunk
from ._pipeline import CHUNK_SCHEMA, Report, files_under, ingest
from ._sandbox import parse_bytes, parse_file

__all__ = ["CHUNK_SCHEMA", "STRATEGIES", "Chunk", "Options", "Report", "chunk", "files_under", "ingest", "parse_bytes",
           "parse_file"]
