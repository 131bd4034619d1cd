"""Document parsing into typed elements, in the shape of Databricks' ``ai_parse_document`` (v2):

    {"document": {"pages": [{"id": 0}], "elements": [
        {"id": 0, "type": "title" | "section_header" | "text" | "list_item" | "table" | "caption" |
                  "page_header" | "page_footer",
         "content": "...", "page_id": 0, "start": 0, "end": 42, "level": 1 (headers)}]},
     "error_status": [], "metadata": {"version": "2.0", "file_metadata": {...}}}

``start``/``end`` are offsets into the document's plain text (the elements' contents joined with
blank lines), so a chunk can point back at the exact span it came from. Tables come out as HTML.

These functions run inside the worker subprocess (see ``_worker``), with memory, CPU and file-size
limits: parsing untrusted files never happens in the server process.
"""

from __future__ import annotations

import html
import io
import re
import zipfile
from collections.abc import Iterable
from typing import Any

MAX_UNZIPPED = 200 << 20  # DOCX / PPTX: total uncompressed size
MAX_RATIO = 200  # and compression ratio, per member
MAX_MEMBERS = 10_000
MAX_DEPTH = 200  # HTML / Markdown nesting


class ParseError(Exception):
    """A file that cannot be parsed; ``kind`` says why (CORRUPT, UNSUPPORTED, TOO_LARGE, UNSAFE)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


FORMATS = {".pdf": "pdf", ".docx": "docx", ".pptx": "pptx", ".html": "html", ".htm": "html", ".md": "markdown",
           ".markdown": "markdown", ".txt": "text", ".text": "text", ".rst": "text", ".csv": "text"}


def detect(name: str, data: bytes) -> str:
    lower = name.lower()
    for ext, kind in FORMATS.items():
        if lower.endswith(ext):
            return kind
    if data.startswith(b"%PDF"):
        return "pdf"
    if data[:200].lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return "html"
    if data.startswith(b"PK\x03\x04"):  # an Office file is a zip: its members say which
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                names = set(z.namelist()[:MAX_MEMBERS])
        except (zipfile.BadZipFile, ValueError):
            names = set()
        if "word/document.xml" in names:
            return "docx"
        if "ppt/presentation.xml" in names:
            return "pptx"
    elif b"\x00" not in data[:4096]:  # text with no name to go by: plain text (Markdown reads as text too)
        sample = data[:4096]
        try:
            sample.decode("utf-8")
        except UnicodeDecodeError as exc:
            if len(data) <= len(sample) or exc.start < len(sample) - 3:  # not just a character cut by the sample's end
                raise ParseError("UNSUPPORTED", f"cannot tell the format of {name!r}; supported: PDF, DOCX, PPTX, "
                                                "HTML, Markdown and plain text") from None
        return "markdown" if re.search(rb"(?m)^(#{1,6} |```)", sample) else "text"
    raise ParseError("UNSUPPORTED", f"cannot tell the format of {name!r}; supported: "
                                    "PDF, DOCX, PPTX, HTML, Markdown and plain text")


class _Doc:
    def __init__(self) -> None:
        self.elements: list[dict[str, Any]] = []
        self.pages: set[int] = {0}
        self.offset = 0

    def add(self, kind: str, content: str, page: int = 0, **extra: Any) -> None:
        content = content.strip()
        if not content:
            return
        start = self.offset
        self.offset += len(content) + 2
        self.pages.add(page)
        self.elements.append({"id": len(self.elements), "type": kind, "content": content, "page_id": page,
                              "start": start, "end": start + len(content), **extra})


def parse(data: bytes, name: str, *, size: int | None = None) -> dict[str, Any]:
    kind = detect(name, data)
    doc = _Doc()
    if kind == "pdf":
        _pdf(data, doc)
    elif kind == "docx":
        _check_zip(data)
        _docx(data, doc)
    elif kind == "pptx":
        _check_zip(data)
        _pptx(data, doc)
    elif kind == "html":
        from ._html import parse_html

        parse_html(_text(data), doc)
    elif kind == "markdown":
        _markdown(_text(data), doc)
    else:
        _plain(_text(data), doc)
    return {"document": {"pages": [{"id": p} for p in sorted(doc.pages)], "elements": doc.elements},
            "error_status": [],
            "metadata": {"version": "2.0", "format": kind,
                         "file_metadata": {"file_name": name, "file_size": size if size is not None else len(data)}}}


def text_of(parsed: dict[str, Any]) -> str:
    return "\n\n".join(e["content"] for e in parsed["document"]["elements"])


def _text(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace").replace("\x00", "")
    return data.decode("utf-8", "replace").replace("\x00", "")


# -- zip containers -----------------------------------------------------------------------------------
def _check_zip(data: bytes) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ParseError("CORRUPT", "the file is not a valid Office (zip) document") from None
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ParseError("UNSAFE", f"the document has {len(infos)} parts (at most {MAX_MEMBERS})")
    total = 0
    for info in infos:
        total += info.file_size
        if info.file_size > 1 << 20 and info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
            raise ParseError("UNSAFE", f"part {info.filename!r} expands {info.file_size // info.compress_size}:1 "
                                       "(a zip bomb?)")
        if info.filename.startswith("/") or ".." in info.filename.split("/"):
            raise ParseError("UNSAFE", f"part {info.filename!r} has an unsafe path")
        if info.external_attr >> 16 & 0o170000 == 0o120000:
            raise ParseError("UNSAFE", f"part {info.filename!r} is a symbolic link")
    if total > MAX_UNZIPPED:
        raise ParseError("TOO_LARGE", f"the document expands to {total >> 20} MiB (at most {MAX_UNZIPPED >> 20})")
    for info in infos:
        if info.filename.endswith(".xml") or info.filename.endswith(".rels"):
            _refuse_dtd(archive.read(info.filename), info.filename)


class _Declared(Exception):
    pass


def _refuse_dtd(data: bytes, name: str) -> None:
    """Refuse an XML part that declares a DTD or entities (XXE, billion laughs). The part is read by expat,
    which decodes it as an XML parser must (byte-order mark, UTF-16 without one, the declared encoding), so
    no encoding hides a declaration; a part expat cannot read (an encoding it does not know) is refused too
    rather than handed to a parser that might read it differently."""
    import xml.parsers.expat

    def declared(*_args: Any) -> None:
        raise _Declared

    parser = xml.parsers.expat.ParserCreate()
    parser.StartDoctypeDeclHandler = declared
    parser.EntityDeclHandler = declared
    parser.ExternalEntityRefHandler = declared
    try:
        parser.Parse(data, True)
    except _Declared:
        raise ParseError("UNSAFE", f"part {name!r} declares a DTD or entities (XXE is refused)") from None
    except (xml.parsers.expat.ExpatError, ValueError, LookupError) as exc:
        raise ParseError("UNSAFE", f"part {name!r} is not XML that can be checked safely ({exc})") from None


def _table_html(rows: Iterable[Iterable[Any]]) -> str:
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c or '').strip())}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table>{body}</table>"


def _docx(data: bytes, doc: _Doc) -> None:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - python-docx raises many kinds
        raise ParseError("CORRUPT", f"cannot read the DOCX: {type(exc).__name__}") from None
    body = document.element.body
    for child in body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            para = Paragraph(child, document)
            style = (para.style.name if para.style is not None else "") or ""
            text = para.text
            if style == "Title":
                doc.add("title", text)
            elif style.startswith("Heading"):
                level = int(style.split()[-1]) if style.split()[-1].isdigit() else 1
                doc.add("section_header", text, level=level)
            elif style.startswith("List") or child.find(".//{*}numPr") is not None:
                doc.add("list_item", text)
            elif style == "Caption":
                doc.add("caption", text)
            else:
                doc.add("text", text)
        elif tag == "tbl":
            table = Table(child, document)
            doc.add("table", _table_html([cell.text for cell in row.cells] for row in table.rows))
    for section in document.sections:
        for part, kind in ((section.header, "page_header"), (section.footer, "page_footer")):
            text = "\n".join(p.text for p in part.paragraphs if p.text.strip()) if part is not None else ""
            if text:
                doc.add(kind, text)


def _pptx(data: bytes, doc: _Doc) -> None:
    from pptx import Presentation

    try:
        deck = Presentation(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001
        raise ParseError("CORRUPT", f"cannot read the PPTX: {type(exc).__name__}") from None
    for page, slide in enumerate(deck.slides):
        title = slide.shapes.title
        if title is not None and title.has_text_frame:
            doc.add("title" if page == 0 else "section_header", title.text_frame.text, page, level=1)
        title_id = title.shape_id if title is not None else None
        for shape in slide.shapes:
            if shape.shape_id == title_id:
                continue
            if getattr(shape, "has_table", False) and shape.has_table:
                doc.add("table", _table_html([c.text for c in row.cells] for row in shape.table.rows), page)
            elif shape.has_text_frame:
                for para in shape.text_frame.paragraphs:
                    text = "".join(run.text for run in para.runs)
                    doc.add("list_item" if para.level > 0 else "text", text, page)
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            doc.add("text", slide.notes_slide.notes_text_frame.text, page)


def _pdf(data: bytes, doc: _Doc) -> None:
    import pdfplumber

    try:
        pdf = pdfplumber.open(io.BytesIO(data))
        pages = list(pdf.pages)
    except Exception as exc:  # noqa: BLE001 - pdfminer raises many kinds
        raise ParseError("CORRUPT", f"cannot read the PDF: {type(exc).__name__}") from None
    sizes: list[float] = []
    per_page = []
    for page in pages:
        try:
            tables = page.find_tables()
            boxes = [t.bbox for t in tables]
            words = page.extract_words(extra_attrs=["size"], keep_blank_chars=False, use_text_flow=True)
        except Exception as exc:  # noqa: BLE001
            raise ParseError("CORRUPT", f"cannot read page {page.page_number} of the PDF: {type(exc).__name__}") \
                from None
        words = [w for w in words if not any(b[0] <= w["x0"] and w["x1"] <= b[2] and b[1] <= w["top"] and
                                             w["bottom"] <= b[3] for b in boxes)]
        sizes += [round(float(w["size"]), 1) for w in words]
        per_page.append((page, tables, words))
    body_size = max(set(sizes), key=sizes.count) if sizes else 10.0
    for index, (page, tables, words) in enumerate(per_page):
        lines: list[list[dict[str, Any]]] = []
        for w in words:
            if lines and abs(lines[-1][-1]["top"] - w["top"]) < 2:
                lines[-1].append(w)
            else:
                lines.append([w])
        height = float(page.height)
        blocks: list[tuple[str, str, float, float]] = []  # kind, text, top, bottom
        for line in lines:
            text = " ".join(w["text"] for w in line)
            size = max(float(w["size"]) for w in line)
            top, bottom = min(w["top"] for w in line), max(w["bottom"] for w in line)
            if bottom < height * 0.06:
                kind = "page_header"
            elif top > height * 0.94:
                kind = "page_footer"
            elif size >= body_size * 1.6 and index == 0 and not any(b[0] == "title" for b in blocks):
                kind = "title"
            elif size >= body_size * 1.15:
                kind = "section_header"
            elif re.match(r"^([-*\u2022\u25cf]|\d+[.)])\s", text):
                kind = "list_item"
            else:
                kind = "text"
            previous = blocks[-1] if blocks else None
            if previous and kind == previous[0] == "text" and top - previous[3] < size * 0.9:
                blocks[-1] = (kind, previous[1] + " " + text, previous[2], bottom)
            else:
                blocks.append((kind, text, top, bottom))
        items: list[tuple[float, str, str, dict[str, Any]]] = []
        for kind, text, top, _ in blocks:
            extra = {"level": 1 if kind == "section_header" else None} if kind == "section_header" else {}
            items.append((top, kind, text, extra))
        for table in tables:
            try:
                items.append((table.bbox[1], "table", _table_html(table.extract()), {}))
            except Exception:  # noqa: BLE001 - a table that cannot be read is skipped, its text is lost
                continue
        for _, kind, text, extra in sorted(items, key=lambda it: it[0]):
            doc.add(kind, text, index, **extra)
        doc.pages.add(index)


def _markdown(text: str, doc: _Doc) -> None:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"maxNesting": MAX_DEPTH}).enable("table")
    try:
        tokens = md.parse(text)
    except RecursionError:
        raise ParseError("UNSAFE", "the Markdown nests too deeply") from None
    in_list = 0
    table: list[list[str]] | None = None
    heading: str | None = None
    for i, tok in enumerate(tokens):
        if tok.type in ("bullet_list_open", "ordered_list_open"):
            in_list += 1
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            in_list -= 1
        elif tok.type == "heading_open":
            heading = tok.tag
        elif tok.type == "table_open":
            table = []
        elif tok.type == "tr_open" and table is not None:
            table.append([])
        elif tok.type == "table_close" and table is not None:
            doc.add("table", _table_html(table))
            table = None
        elif tok.type == "inline":
            content = tok.content
            if table is not None:
                if table:
                    table[-1].append(content)
            elif heading is not None:
                level = int(heading[1:])
                if level == 1 and not any(e["type"] == "title" for e in doc.elements):
                    doc.add("title", content)
                else:
                    doc.add("section_header", content, level=level)
                heading = None
            elif in_list:
                doc.add("list_item", content)
            else:
                doc.add("text", content)
        elif tok.type in ("fence", "code_block"):
            doc.add("text", tok.content)
        del i


def _plain(text: str, doc: _Doc) -> None:
    for block in re.split(r"\n\s*\n", text):
        doc.add("text", block)
