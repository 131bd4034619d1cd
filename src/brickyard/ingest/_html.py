"""HTML pages into elements: the page's main content only, with its structure.

Generated sites wrap every page in furniture (navigation bars, sidebars with a table of contents, search
boxes, "Show Source" and "Previous topic" blocks, footers). Chunking that furniture buries the content, so:

* when a page marks its main content (``<main>``, ``role="main"``, as Sphinx, MkDocs, Docusaurus and most
  generators do), only that is read;
* landmarks that are never content are dropped wherever they are: ``<nav>``, ``<aside>``, ARIA
  navigation / search / complementary regions, and, outside the main content, ``<header>``, ``<footer>``,
  banner and contentinfo regions and blocks whose class names them as sidebars, menus or footers;
* a block that is (almost) all link text (a link list, a generated index or table of contents) is dropped;
* permalink anchors and their glyphs (``¶``, ``#``, ``§``) never reach a heading;
* a definition list's terms are structure: the top-level ``<dt>`` of an API reference (a function's
  signature) becomes a section header one level below the heading it sits under, so its text is found
  under ``module > section > signature``.

Article extractors (trafilatura, readability) were measured on API documentation and rejected: they
flatten code blocks onto one line, turn inline code into blocks, or pick a single code sample as "the
article" (see docs/ingest.md).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from ._parse import MAX_DEPTH, ParseError, _Doc, _table_html

BLOCKS = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "figcaption", "caption", "title", "pre", "blockquote",
          "td", "th", "dt", "dd"}
SKIP = {"script", "style", "noscript", "template", "head", "svg", "button", "form", "select", "textarea"}
NEVER_CONTENT_TAGS = {"nav", "aside"}
NEVER_CONTENT_ROLES = {"navigation", "search", "complementary"}
OUTSIDE_MAIN_TAGS = {"header", "footer"}
OUTSIDE_MAIN_ROLES = {"banner", "contentinfo"}
FURNITURE_CLASSES = {"sphinxsidebar", "sphinxsidebarwrapper", "related", "footer", "sidebar", "navbar", "nav",
                     "menu", "breadcrumb", "breadcrumbs", "toc", "toctree-wrapper", "skip-link", "site-header",
                     "site-footer", "md-sidebar", "md-header", "md-footer", "wy-nav-side", "rst-versions"}
PERMALINK_CLASSES = {"headerlink", "anchorlink", "anchor-link", "hash-link", "permalink", "header-anchor"}
_PERMALINK_TAIL = re.compile(r"[\s\u00b6#\u00a7\U0001f517]+$")
LINK_SHARE = 0.8  # a block whose text is at least this share link text is navigation
_MAIN = re.compile(r"<main[\s>]|role\s*=\s*[\"']?main\b", re.IGNORECASE)


class _Page(HTMLParser):
    def __init__(self, doc: _Doc, *, main_only: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.doc = doc
        self.main_only = main_only
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, skips, is main)
        self.buffer: list[str] = []
        self.table: list[list[str]] | None = None
        self.cell: list[str] | None = None
        self.skip = 0
        self.in_main = 0
        self.links = 0  # depth of <a> elements (content ones)
        self.link_chars = 0  # characters of link text in the buffer
        self.dl_depth = 0
        self.level = 0  # the level of the last heading: a top-level <dt> sits one below it
        self.dropped = 0  # blocks dropped as navigation
        self.table_chars = self.table_link_chars = 0  # text in the current table's cells, and link text

    # -- what to read --------------------------------------------------------------------------------
    def _skips(self, tag: str, attrs: dict[str, str]) -> bool:
        if tag in SKIP or tag in NEVER_CONTENT_TAGS:
            return True
        role = (attrs.get("role") or "").lower()
        classes = set((attrs.get("class") or "").lower().split())
        if role in NEVER_CONTENT_ROLES or (tag == "a" and classes & PERMALINK_CLASSES):
            return True
        if attrs.get("hidden") is not None or attrs.get("aria-hidden") == "true":
            return True
        if self.in_main:
            return False
        return tag in OUTSIDE_MAIN_TAGS or role in OUTSIDE_MAIN_ROLES or bool(classes & FURNITURE_CLASSES)

    def _reading(self) -> bool:
        return not self.skip and (self.in_main > 0 or not self.main_only)

    def handle_starttag(self, tag: str, attrs_list: Any) -> None:
        attrs = {k.lower(): (v or "") for k, v in attrs_list}
        if tag in ("br", "hr", "img", "meta", "link", "input", "wbr", "source"):
            if tag == "br" and self._reading():
                self.buffer.append("\n")
            return
        if len(self.stack) > MAX_DEPTH:
            raise ParseError("UNSAFE", f"the HTML nests deeper than {MAX_DEPTH} elements")
        skips = self._skips(tag, attrs)
        is_main = not skips and (tag == "main" or (attrs.get("role") or "").lower() == "main")
        self.stack.append((tag, skips, is_main))
        if skips:
            self.skip += 1
            return
        if is_main:
            self.in_main += 1
        if tag == "a":
            self.links += 1
        elif tag == "dl":
            self.dl_depth += 1
        if not self._reading():
            return
        if tag == "table":
            self._flush()
            self.table = []
            self.table_chars = self.table_link_chars = 0
        elif tag == "tr" and self.table is not None:
            self.table.append([])
        elif tag in ("td", "th") and self.table is not None:
            self.cell = []
        elif tag in BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if not any(t == tag for t, _, _ in self.stack):
            return
        while self.stack:
            top, skips, is_main = self.stack.pop()
            if skips:
                self.skip -= 1
            else:
                if self._reading():
                    self._close(top)
                if top == "a":
                    self.links -= 1
                elif top == "dl":
                    self.dl_depth -= 1
                if is_main:
                    self.in_main -= 1
            if top == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self._reading():
            return
        if self.cell is not None:
            self.cell.append(data)
            self.table_chars += len(data.strip())
            if self.links:
                self.table_link_chars += len(data.strip())
        elif self.table is None:
            self.buffer.append(data)
            if self.links:
                self.link_chars += len(data.strip())

    # -- blocks ---------------------------------------------------------------------------------------
    def _take(self) -> tuple[str, bool]:
        """The buffered text, and whether it is (almost) all link text."""
        text = re.sub(r"\s+", " ", "".join(self.buffer)).strip()  # source line breaks are not content
        visible = len(re.sub(r"\s+", "", text))
        navigation = visible > 0 and self.link_chars >= LINK_SHARE * visible
        self.buffer, self.link_chars = [], 0
        return text, navigation

    def _close(self, tag: str) -> None:
        if tag in ("td", "th") and self.table is not None and self.cell is not None:
            if not self.table:
                self.table.append([])
            self.table[-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "table" and self.table is not None:
            if self.table_chars and self.table_link_chars >= LINK_SHARE * self.table_chars:
                self.dropped += 1  # a table of links: a generated index, not content
            elif any(any(c for c in row) for row in self.table):
                self.doc.add("table", _table_html(self.table))
            self.table = None
        elif tag == "pre" and self.table is None:  # code keeps its lines and indentation
            raw = "".join(self.buffer).strip("\n")
            self.buffer, self.link_chars = [], 0
            if raw.strip():
                self.doc.add("text", raw)
        elif tag in BLOCKS and self.table is None:
            text, navigation = self._take()
            if not text:
                return
            if tag[0] == "h" and tag[1:].isdigit():
                text = _PERMALINK_TAIL.sub("", text)
                level = int(tag[1:])
                self.level = level
                if level == 1 and not any(e["type"] == "title" for e in self.doc.elements):
                    self.doc.add("title", text)
                else:
                    self.doc.add("section_header", text, level=level)
            elif tag == "title":
                pass  # the <title> of the head: metadata, not content
            elif navigation:
                self.dropped += 1
            elif tag == "dt" and self.dl_depth == 1:
                self.doc.add("section_header", _PERMALINK_TAIL.sub("", text), level=min(self.level + 1, 7))
            elif tag in ("li", "dt", "dd"):
                self.doc.add("list_item", text)
            elif tag in ("figcaption", "caption"):
                self.doc.add("caption", text)
            else:
                self.doc.add("text", text)

    def _flush(self) -> None:
        text, navigation = self._take()
        text = re.sub(r"\s+", " ", text)
        if text and navigation:
            self.dropped += 1
        elif text:
            self.doc.add("text", text)

    def finish(self) -> None:
        while self.stack:
            top, skips, _ = self.stack.pop()
            if not skips and self._reading():
                self._close(top)
        if self._reading() or not self.main_only:
            self._flush()


def parse_html(text: str, doc: _Doc) -> None:
    parser = _Page(doc, main_only=bool(_MAIN.search(text)))
    try:
        parser.feed(text)
        parser.close()
    except AssertionError as exc:  # the standard library's HTMLParser asserts on some malformed markup
        raise ParseError("CORRUPT", f"the HTML is malformed beyond repair ({str(exc)[:80]})") from None
    parser.finish()
