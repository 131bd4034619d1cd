"""Pages of a generated site give their content, not their furniture (issue 18, point 5): navigation,
sidebars, footers, link lists and generated index pages are dropped, permalink glyphs never reach a heading,
API definition terms are structure, code keeps its indentation, and overlaps start at a word."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from brickyard.bench._ingest import is_furniture, measure_chunks
from brickyard.core.settings import Settings
from brickyard.ingest import Options, chunk
from brickyard.ingest._parse import parse
from brickyard.workspace import Workspace

SIDEBAR = """<div class="sphinxsidebar" role="navigation" aria-label="main navigation"><div>
<h3><a href="contents.html">Table of Contents</a></h3><ul><li><a href="#">cachetools</a></li></ul>
<h4>Previous topic</h4><p class="topless"><a href="x.html">Functional modules</a></p>
<h4>Next topic</h4><p class="topless"><a href="y.html">operator</a></p>
<div role="note" aria-label="source link"><h3>This Page</h3><ul><li><a href="#">Report a Bug</a></li>
<li><a href="_sources/x.rst.txt">Show Source</a></li></ul></div></div></div>"""
RELATED = """<div class="related" role="navigation" aria-label="related navigation"><h3>Navigation</h3>
<ul><li><a href="genindex.html">index</a></li><li><a href="py-modindex.html">modules</a> |</li>
<li><a href="y.html">next</a> |</li><li><a href="x.html">previous</a> |</li></ul></div>"""
FOOTER = '<div class="footer">&copy; Copyright 2001-2026. <a href="#">Found a bug</a>? Created using Sphinx.</div>'

API_PAGE = f"""<!DOCTYPE html><html><head><title>cachetools</title></head><body>{RELATED}
<div class="document"><div class="body" role="main">
<section id="cachetools"><h1><code>cachetools</code> &#8212; Caches for callables<a class="headerlink" href="#cachetools"
 title="Permalink to this heading">&#182;</a></h1>
<p>This module provides caches for functions. See also <a href="x.html">the functional modules</a> for
more about how the caches are kept.</p>
<section id="functions"><h2>Functions<a class="headerlink" href="#functions">&#182;</a></h2>
<dl class="py function"><dt class="sig sig-object py" id="cachetools.lru">
<span class="sig-prename">cachetools.</span><span class="sig-name">lru</span>(<em>maxsize=128</em>)
<a class="headerlink" href="#cachetools.lru">&#182;</a></dt>
<dd><p>Keep the most recently used results, up to <em>maxsize</em> of them.</p>
<dl class="field-list"><dt>Parameters</dt><dd><p><strong>maxsize</strong> &#8211; how many results to keep.</p></dd></dl>
<div class="highlight"><pre>@lru(maxsize=32)
def fib(n):
    return n if n &lt; 2 else fib(n - 1) + fib(n - 2)</pre></div></dd></dl>
<ul class="simple"><li><p><a href="a.html">one link</a></p></li><li><p><a href="b.html">another link</a></p></li></ul>
</section></section></div></div>{SIDEBAR}{FOOTER}</body></html>"""

INDEX_PAGE = f"""<html><body>{RELATED}<div class="body" role="main"><h1 id="index">Index &#8211; L</h1>
<table class="indextable genindextable"><tr><td><ul><li><a href="cachetools.html#cachetools.lru">lru() (in module
cachetools)</a></li><li><a href="z.html">lzma</a></li></ul></td></tr></table></div>{SIDEBAR}</body></html>"""

PLAIN_PAGE = """<html><body><header class="site-header"><a href="/">Home</a> <a href="/blog">Blog</a></header>
<nav><a href="/a">A</a> <a href="/b">B</a></nav><h1>Release notes</h1><p>Version 2 makes every cache
thread-safe.</p><aside><h3>Related posts</h3><p><a href="/p">Another post</a></p></aside>
<footer>Theme by someone. Back to top</footer></body></html>"""


def elements(html: str) -> list[dict[str, object]]:
    return list(parse(html.encode(), "page.html")["document"]["elements"])


def test_only_the_main_content_of_a_sphinx_page_is_read() -> None:
    els = elements(API_PAGE)
    text = "\n".join(str(e["content"]) for e in els)
    for furniture in ("Previous topic", "Next topic", "Show Source", "Report a Bug", "Navigation", "modules |",
                      "Copyright", "Table of Contents", "one link"):
        assert furniture not in text, furniture
    assert "\u00b6" not in text
    assert els[0] == {**els[0], "type": "title", "content": "cachetools \u2014 Caches for callables"}
    assert "See also the functional modules for more" in text  # a paragraph with a link in it stays
    signature = next(e for e in els if "cachetools.lru" in str(e["content"]))
    assert signature["type"] == "section_header" and signature["level"] == 3  # below the h2 "Functions"
    assert any(e["type"] == "list_item" and e["content"] == "Parameters" for e in els)  # a nested dt stays a term
    code = next(e for e in els if "def fib" in str(e["content"]))
    assert "\n    return n if n < 2" in str(code["content"])  # indentation kept
    chunks = chunk(parse(API_PAGE.encode(), "cachetools.html"), "cachetools.html", Options(strategy="structure"))
    assert any(c.section_path == "cachetools \u2014 Caches for callables > Functions > cachetools.lru(maxsize=128)"
               for c in chunks)


def test_generated_index_pages_and_unlabelled_furniture_give_no_chunks() -> None:
    assert [e["content"] for e in elements(INDEX_PAGE)] == ["Index \u2013 L"]
    plain = [str(e["content"]) for e in elements(PLAIN_PAGE)]
    assert plain == ["Release notes", "Version 2 makes every cache thread-safe."]


def test_overlaps_start_at_a_word(tmp_path: Path) -> None:
    rng = random.Random(7)
    words = ["cache", "tables", "vector", "gateway", "serving", "lineage", "governance", "throughput"]
    text = "\n\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(5, 90))) + "." for _ in range(60))
    parsed = parse(text.encode(), "notes.txt")
    chunks = chunk(parsed, "notes.txt", Options(strategy="recursive", size=300, overlap=80))
    full = "\n\n".join(str(e["content"]) for e in parsed["document"]["elements"])
    overlapping = [(a, b) for a, b in zip(chunks, chunks[1:], strict=False) if b.start < a.end]
    assert overlapping, "the text should give overlapping chunks"
    for _, b in overlapping:
        assert b.start == 0 or not full[b.start - 1].isalnum(), full[b.start - 5:b.start + 10]
    assert all(full[c.start:c.end] == c.text for c in chunks)


@pytest.mark.parametrize("page,expected", [(API_PAGE, 0), (INDEX_PAGE, 0)])
def test_the_furniture_measure_finds_none_in_ingested_pages(tmp_path: Path, page: str, expected: int) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "cachetools.html").write_text(page)
    with Workspace(Settings(home=tmp_path / "home"), background=False) as ws:
        p = ws.ensure_user("a@example.com", admin=True)
        ws.ingest(p, [site], "main.default.docs", options=Options(strategy="structure"))
        rows = ws.tables.read(p, "main.default.docs").to_pylist()
    assert measure_chunks(rows)["furniture_chunks"] == expected
    assert is_furniture("x.html", "Previous topic\n\nAbout", "") and is_furniture("genindex-A.html", "Index", "")
