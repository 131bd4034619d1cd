"""``ai_parse_document`` over ``read_files(..., format => 'binaryFile')`` in SQL (issue 21): the files of a volume as
rows, read as the caller (READ VOLUME); each document parsed in the parsing sandbox into the REST route's shape, its
format told from its bytes; a file that cannot be parsed answers its reason in ``error_status``."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from brickyard.core.errors import InvalidParameterValue, NotFound, PermissionDenied
from brickyard.workspace import Workspace
from tests.sql._shared import ADMIN, workspace
from tests.sql._shared import rows as _rows


def _pdf(text: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text=text)
    return bytes(pdf.output())


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = workspace(tmp_path_factory.mktemp("parse-sql") / "home")
    admin = w.principal(ADMIN)
    w.volumes.create(admin, "main.default.docs")
    w.volumes.upload(admin, "/Volumes/main/default/docs/guide.md", b"# Rate limits\n\nEach endpoint has its own.\n")
    w.volumes.upload(admin, "/Volumes/main/default/docs/notes/plain.txt", b"plain words here")
    w.volumes.upload(admin, "/Volumes/main/default/docs/broken.bin", b"\x00\x01\x02 not a document")
    w.volumes.upload(admin, "/Volumes/main/default/docs/report.pdf", _pdf("Quarterly report"))
    yield w
    w.close()


def test_read_files_lists_a_volume_as_rows(ws: Workspace) -> None:
    rows = _rows(ws, "SELECT path, length, content FROM read_files('/Volumes/main/default/docs', "
                     "format => 'binaryFile') ORDER BY path")
    assert [r["path"] for r in rows] == [f"dbfs:/Volumes/main/default/docs/{n}" for n in
                                         ("broken.bin", "guide.md", "notes/plain.txt", "report.pdf")]
    assert rows[2]["content"] == b"plain words here" and rows[2]["length"] == 16
    md = _rows(ws, "SELECT path FROM read_files('/Volumes/main/default/docs/', format => 'binaryFile', "
                   "pathGlobFilter => '*.md', recursiveFileLookup => false)")
    assert md == [{"path": "dbfs:/Volumes/main/default/docs/guide.md"}]


def test_ai_parse_document_in_the_sandbox(ws: Workspace) -> None:
    rows = _rows(ws, "SELECT path, ai_parse_document(content) AS parsed FROM read_files('/Volumes/main/default/docs', "
                     "format => 'binaryFile') ORDER BY path")
    parsed = {r["path"].rsplit("/", 1)[-1]: json.loads(r["parsed"]) for r in rows}
    assert parsed["guide.md"]["document"]["elements"][0]["content"] == "Rate limits"
    assert parsed["report.pdf"]["document"]["elements"][0]["content"] == "Quarterly report"
    assert parsed["plain.txt"]["error_status"] == [] and parsed["plain.txt"]["metadata"]["version"] == "2.0"
    assert "UNSUPPORTED" in parsed["broken.bin"]["error_status"][0]["error_message"]  # its row, not the statement
    # the same shape as the REST route gives for the same bytes
    from brickyard.ingest import parse_bytes

    assert parsed["report.pdf"]["document"] == parse_bytes(_pdf("Quarterly report"), "report.pdf")["document"]
    # Databricks' variant paths read into it
    first = _rows(ws, "SELECT ai_parse_document(content):document:elements[0]:content::string AS c FROM "
                      "read_files('/Volumes/main/default/docs', format => 'binaryFile', pathGlobFilter => '*.pdf')")
    assert first == [{"c": "Quarterly report"}]
    assert _rows(ws, "SELECT ai_parse_document(CAST(NULL AS BINARY)) AS p") == [{"p": None}]


def test_ai_parse_document_of_bytes_from_a_parameter(ws: Workspace) -> None:
    text = base64.b64encode(b"# Hello\n\nfrom bytes").decode()
    got = ws.sql.execute(ws.principal("admin@example.com"),
                         "SELECT ai_parse_document(unbase64(:b)):document:elements[1]:content::string AS t",
                         parameters=[{"name": "b", "value": text}]).table.to_pylist()
    assert got == [{"t": "from bytes"}]


def test_read_files_is_governed_and_checked(ws: Workspace) -> None:
    with pytest.raises(PermissionDenied):
        _rows(ws, "SELECT path FROM read_files('/Volumes/main/default/docs', format => 'binaryFile')", "bob@example.com")
    ws.catalog.update_grants(ws.principal("admin@example.com"), "volume", "main.default.docs",
                             [{"principal": "bob@example.com", "add": ["READ_VOLUME"]}])
    assert len(_rows(ws, "SELECT path FROM read_files('/Volumes/main/default/docs', format => 'binaryFile')",
                     "bob@example.com")) == 4
    with pytest.raises(NotFound):
        _rows(ws, "SELECT * FROM read_files('/Volumes/main/default/docs/nope', format => 'binaryFile')")
    for sql, why in [("SELECT * FROM read_files('/etc', format => 'binaryFile')", "/Volumes/"),
                     ("SELECT * FROM read_files('/Volumes/main/default/docs', format => 'csv')", "binaryFile"),
                     ("SELECT * FROM read_files('/Volumes/main/default/docs/../../x', format => 'binaryFile')", "[.][.]|invalid|not"),
                     ("SELECT * FROM read_files('/Volumes/main/default/docs', format => 'binaryFile', x => 1)", "option"),
                     ("SELECT ai_parse_document(content, map('version', '1.0')) FROM read_files("
                      "'/Volumes/main/default/docs', format => 'binaryFile')", "2.0"),
                     ("SELECT ai_parse_document('a', 'b', 'c')", "1 or 2")]:
        with pytest.raises((InvalidParameterValue, PermissionDenied, NotFound), match=why):
            _rows(ws, sql)
