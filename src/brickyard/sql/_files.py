"""Files of volumes in SQL: ``read_files('/Volumes/...', format => 'binaryFile')`` as a table, and
``ai_parse_document(content)`` parsing each file's bytes in the parsing sandbox.

``read_files`` reads as the caller (READ VOLUME), before the statement runs, into the table Databricks' binaryFile
source gives: ``path``, ``modificationTime``, ``length``, ``content``. ``ai_parse_document`` answers the same
document shape as the REST route (``{document: {pages, elements}, error_status, metadata}``) as JSON, so
``p:document:elements`` paths work; a file that cannot be parsed answers its reason in ``error_status``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from ..catalog import Principal
from ..core.errors import InvalidParameterValue
from ..tables import Volumes
from ._text import shown

#: a batch of documents' bytes -> their parsed shape (None for None); given by the workspace (ingest's sandbox)
ParseDocuments = Callable[[list[bytes | None]], list[dict[str, Any] | None]]
OPTIONS = ("format", "pathglobfilter", "recursivefilelookup")
PARSE_OPTIONS = ("version", "imageoutputpath", "descriptionelementtypes")
SCHEMA = pa.schema([("path", pa.string()), ("modificationTime", pa.timestamp("us", tz="UTC")),
                    ("length", pa.int64()), ("content", pa.binary())])


def is_read_files(exp: Any, node: Any) -> bool:
    return isinstance(node, exp.Anonymous) and str(node.name).lower() == "read_files"


def read_files(volumes: Volumes, p: Principal, exp: Any, node: Any, *, max_bytes: int) -> pa.Table:
    """The rows of ``read_files(path, format => 'binaryFile' [, pathGlobFilter => '*.pdf',
    recursiveFileLookup => true])``, read as ``p``; at most ``max_bytes`` of content in all."""
    args = list(node.expressions)
    named: dict[str, Any] = {}
    positional = []
    for arg in args:
        if isinstance(arg, exp.Kwarg):
            key = arg.this.name.lower()
            if key not in OPTIONS:
                raise InvalidParameterValue(f"read_files has no option {arg.this.name!r}; Brickyard reads format, "
                                            "pathGlobFilter, recursiveFileLookup")
            named[key] = _literal(exp, arg.expression, arg.this.name)
        else:
            positional.append(_literal(exp, arg, "the path"))
    if len(positional) != 1 or not isinstance(positional[0], str):
        raise InvalidParameterValue("read_files takes one path, a string literal: read_files('/Volumes/c/s/v/dir', "
                                    "format => 'binaryFile')")
    path = positional[0]
    if not path.startswith("/Volumes/"):
        raise InvalidParameterValue(f"read_files reads volumes: the path must start with /Volumes/, not {path[:60]!r}")
    fmt = str(named.get("format") or "").lower()
    if fmt != "binaryfile":
        raise InvalidParameterValue("read_files in Brickyard reads format => 'binaryFile' (one row per file with its "
                                    "bytes); load CSV, JSON or Parquet into a table with the Files API and ingest")
    pattern = named.get("pathglobfilter")
    recursive = named.get("recursivefilelookup", True)
    if pattern is not None and not isinstance(pattern, str) or not isinstance(recursive, bool):
        raise InvalidParameterValue("read_files: pathGlobFilter is a string, recursiveFileLookup true or false")
    files = volumes.walk(p, path, recursive=recursive, pattern=pattern)
    total = sum(info.file_size for info, _ in files)
    if total > max_bytes:
        raise InvalidParameterValue(f"read_files: the files under {path} hold {total >> 20} MiB, more than one statement "
                                    f"may read ({max_bytes >> 20} MiB, BRICKYARD_STATEMENT_MEMORY_BYTES); read fewer")
    rows = {"path": [], "modificationTime": [], "length": [], "content": []}
    for info, local in files:
        rows["path"].append(f"dbfs:{info.path}")
        rows["modificationTime"].append(info.last_modified * 1000)
        rows["length"].append(info.file_size)
        rows["content"].append(local.read_bytes())
    return pa.table(rows, schema=SCHEMA)


def _literal(exp: Any, node: Any, what: str) -> Any:
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else node.to_py()
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    raise InvalidParameterValue(f"read_files: {what} must be a literal, got {shown(node, 60)}")


def check_parse_options(exp: Any, args: list[Any]) -> None:
    """``ai_parse_document(content [, map('version', '2.0', ...)])``: the options Brickyard takes."""
    if not 1 <= len(args) <= 2:
        raise InvalidParameterValue(f"ai_parse_document takes 1 or 2 arguments (content [, options]), got {len(args)}")
    if len(args) == 1:
        return
    options = args[1]
    if not isinstance(options, exp.Map | exp.VarMap):
        raise InvalidParameterValue("ai_parse_document: the options must be map('version', '2.0', ...)")
    keys = options.args.get("keys")
    values = options.args.get("values")
    pairs = list(zip(keys.expressions, values.expressions, strict=False)) if keys is not None and values is not None \
        else []
    for key, value in pairs:
        name = str(key.this).lower() if isinstance(key, exp.Literal) else ""
        if name not in PARSE_OPTIONS:
            raise InvalidParameterValue(f"ai_parse_document has no option {shown(key, 40)}; it takes version, "
                                        "imageOutputPath, descriptionElementTypes")
        if name == "version" and not (isinstance(value, exp.Literal) and str(value.this) == "2.0"):
            raise InvalidParameterValue("ai_parse_document: Brickyard answers version 2.0")


def register_parse(udfs: Any, name: str, parse: ParseDocuments) -> None:
    """Make ``name(content)`` parse each document's bytes in the sandbox and answer its shape as JSON."""
    from duckdb import sqltypes as t

    def udf(contents: pa.Array) -> pa.Array:
        blobs = [None if v is None else bytes(v) for v in contents.to_pylist()]
        parsed = parse(blobs)
        return pa.array([None if d is None else json.dumps(d) for d in parsed], type=pa.string())

    udfs.create_function(name, udf, [t.BLOB], t.VARCHAR, type="arrow", null_handling="special", side_effects=True)
