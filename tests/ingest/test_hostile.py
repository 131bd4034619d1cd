"""T10: hostile documents. Each one, generated here, goes through the sandboxed parser and ends within
10 s (plus process start) with text or a typed IngestionError; the XXE canary never appears in any
output; the server stays up while they go through the REST route."""

from __future__ import annotations

import io
import time
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from brickyard.core.errors import IngestionError
from brickyard.ingest import parse_file
from brickyard.ingest._sandbox import MAX_FILE_BYTES
from tests.ingest.docs import docx_doc, pdf_doc

pytest.importorskip("pdfplumber", reason="needs the 'ingest' extra")
CANARY = "CANARY-7f3a9b2c-do-not-leak"
KINDS = {"CORRUPT", "UNSUPPORTED", "TOO_LARGE", "UNSAFE", "TIMEOUT"}


def _docx_with(document_xml: bytes, extra: dict[str, bytes] | None = None, *, base: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(base))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            z.writestr(info.filename, document_xml if info.filename == "word/document.xml" else src.read(info))
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return out.getvalue()


def corpus(tmp: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        (tmp / name).write_bytes(data)
        files[name] = tmp / name

    canary = tmp / "canary.txt"
    canary.write_text(CANARY)
    good_pdf = pdf_doc(tmp / "good.pdf").read_bytes()
    good_docx = docx_doc(tmp / "good.docx").read_bytes()
    # PDF
    put("truncated.pdf", good_pdf[: len(good_pdf) // 2])
    put("broken-xref.pdf", good_pdf.replace(b"xref", b"xr3f"))
    put("self-ref.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 1 0 R /Kids [1 0 R] >> endobj\ntrailer << /Root 1 0 R"
                        b" >>\n%%EOF")
    bomb = b"\x00" * (100 << 20)
    for _ in range(3):
        bomb = zlib.compress(bomb, 9)
    stream = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1"
              b" >> endobj\n3 0 obj << /Type /Page /Parent 2 0 R /Contents 4 0 R /MediaBox [0 0 100 100] >> endobj\n"
              b"4 0 obj << /Length " + str(len(bomb)).encode() + b" /Filter [/FlateDecode /FlateDecode /FlateDecode] >>"
              b"\nstream\n" + bomb + b"\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF")
    put("flate-bomb.pdf", stream)
    put("page-loop.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages "
                         b"/Kids [2 0 R] /Count 1 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF")
    # DOCX
    zeros = io.BytesIO()
    with zipfile.ZipFile(zeros, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", b"<Types/>")
        z.writestr("word/document.xml", b"\x00" * (300 << 20))
    put("zip-bomb.docx", zeros.getvalue())
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w", zipfile.ZIP_STORED) as z:
        for i in range(50_000):
            z.writestr(f"f{i}.xml", b"")
    put("many-entries.docx", many.getvalue())
    put("zip-slip.docx", _docx_with(zipfile.ZipFile(io.BytesIO(good_docx)).read("word/document.xml"),
                                    {"../../evil.txt": b"x"}, base=good_docx))
    link = io.BytesIO()
    with zipfile.ZipFile(link, "w") as z:
        info = zipfile.ZipInfo("word/link.xml")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, str(canary))
        for name in zipfile.ZipFile(io.BytesIO(good_docx)).namelist():
            z.writestr(name, zipfile.ZipFile(io.BytesIO(good_docx)).read(name))
    put("symlink.docx", link.getvalue())
    xxe = (f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file://{canary}">]>'
           '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r>'
           '<w:t>&x;</w:t></w:r></w:p></w:body></w:document>').encode()
    put("xxe.docx", _docx_with(xxe, base=good_docx))
    laughs = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
              b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
              b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p>'
              b'<w:r><w:t>&d;&d;&d;&d;</w:t></w:r></w:p></w:body></w:document>')
    put("laughs.docx", _docx_with(laughs, base=good_docx))
    # Issue 17 point 11: the same XXE in other encodings, and past the first 4 KiB of the part
    body = xxe.decode().replace('<?xml version="1.0"?>', "")
    put("xxe-utf16le-bom.docx", _docx_with(b"\xff\xfe" + ('<?xml version="1.0" encoding="UTF-16"?>' + body)
                                           .encode("utf-16-le"), base=good_docx))
    put("xxe-utf16be.docx", _docx_with(('<?xml version="1.0" encoding="UTF-16"?>' + body).encode("utf-16-be"),
                                       base=good_docx))
    put("xxe-utf16le-nobom.docx", _docx_with(("<?xml version='1.0' encoding='UTF-16LE'?>" + body)
                                             .encode("utf-16-le"), base=good_docx))
    put("xxe-latin1.docx", _docx_with(("<?xml version='1.0' encoding='ISO-8859-1'?>" + body).encode("latin-1"),
                                      base=good_docx))
    put("xxe-utf32.docx", _docx_with(("<?xml version='1.0' encoding='UTF-32'?>" + body).encode("utf-32"),
                                     base=good_docx))
    put("xxe-late.docx", _docx_with(b'<?xml version="1.0"?><!--' + b"x" * 8192 + b"-->" + body.encode(),
                                    base=good_docx))
    put("xxe-rels.docx", _docx_with(zipfile.ZipFile(io.BytesIO(good_docx)).read("word/document.xml"),
                                    {"word/_rels/extra.xml.rels": ("<?xml version='1.0' encoding='UTF-16'?>"
                                                                   "<!DOCTYPE r [<!ENTITY x SYSTEM 'file:///etc/"
                                                                   "passwd'>]><r>&x;</r>").encode("utf-16")},
                                    base=good_docx))
    # HTML, Markdown, encodings, size
    put("deep.html", b"<div>" * 100_000 + b"x" + b"</div>" * 100_000)
    put("huge-text.html", b"<p>" + b"a" * (50 << 20) + b"</p>")
    put("charset-lie.html", b'<html><meta charset="utf-16"><p>\xff\xfe caf\xe9</p></html>')
    put("deep-quote.md", b"> " * 100_000 + b"x\n")
    put("emphasis.md", b"*a **" * 50_000 + b"\n")
    put("bad-utf8.txt", b"ok \xc3\x28 \xa0\xa1 end")
    put("utf16-nobom.txt", "hello world".encode("utf-16-le"))
    put("nul.txt", b"a\x00b\x00c")
    put("empty.md", b"")
    big = tmp / "too-big.txt"
    with big.open("wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)  # sparse: the size is real, the disk is not used
    files["too-big.txt"] = big
    return files


def test_t10_hostile_files(tmp_path: Path) -> None:
    files = corpus(tmp_path)

    def run(path: Path) -> tuple[str, float, str]:
        started = time.monotonic()
        try:
            parsed = parse_file(path)
            outcome = "text"
            output = str(parsed)
        except IngestionError as exc:
            assert exc.kind in KINDS, exc.kind
            outcome, output = exc.kind, exc.message
        return outcome, time.monotonic() - started, output

    timer: Callable[[Path], tuple[str, float, str]] = run
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(files, pool.map(timer, files.values()), strict=True))
    report = {name: (outcome, round(seconds, 2)) for name, (outcome, seconds, _) in results.items()}
    print("T10:", report)
    for name, (_outcome, seconds, output) in results.items():
        assert seconds < 12, (name, seconds)
        assert CANARY not in output, name
    for name in ("zip-bomb.docx", "many-entries.docx", "zip-slip.docx", "symlink.docx", "xxe.docx", "laughs.docx",
                 "xxe-utf16le-bom.docx", "xxe-utf16be.docx", "xxe-utf16le-nobom.docx", "xxe-latin1.docx",
                 "xxe-utf32.docx", "xxe-late.docx", "xxe-rels.docx"):
        assert results[name][0] in ("UNSAFE", "TOO_LARGE"), (name, results[name][0])
    assert results["too-big.txt"][0] == "TOO_LARGE"
    assert results["empty.md"][0] == "CORRUPT"
    assert results["bad-utf8.txt"][0] == "text" and results["nul.txt"][0] == "text"
    assert not (tmp_path.parent / "evil.txt").exists() and not Path("evil.txt").exists()
