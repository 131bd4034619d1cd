"""``brickyard bench ingest``: ingest a real documentation site and measure speed and chunk quality.

Speed: files/s and chunks/s of a first ingest (parse in the sandbox, chunk, one Delta commit), and the
seconds of a re-run over the unchanged folder. Quality, over the chunks written:

* ``furniture_share``: chunks that are page furniture rather than content: navigation and sidebar blocks
  (recognised by the labels generators print on them: "Previous topic", "Show Source", "Quick search",
  "index | modules | next", copyright footers, ...) and every chunk of a generated listing page (the general
  index, module index, search page). The labels are English, as on the sites measured.
* ``pilcrow_share``: section paths that carry a permalink glyph (``¶``).
* ``midword_overlap_share``: of the chunks that overlap the one before, those whose overlap starts inside a
  word.

Default site: the Python documentation Debian installs (``apt-get install python3.11-doc``), a Sphinx site.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_SITE = Path("/usr/share/doc/python3.11/html")
NAV_HEADINGS = {"navigation", "this page", "previous topic", "next topic", "table of contents", "quick search",
                "search", "related topics", "contents"}
NAV_MARKERS = ("Previous topic", "Next topic", "Show Source", "Report a Bug", "Quick search", "This Page",
               "Created using Sphinx", "modules |", "next |", "previous |", "\u00a9 Copyright", "Last updated on",
               "Found a bug?", "Theme by", "Built with MkDocs", "Back to top", "Skip to main content")
LISTING_PAGES = re.compile(r"(^|/)(genindex[^/]*|py-modindex|modindex|search)\.html?$")


def is_furniture(source: str, text: str, section_path: str) -> bool:
    if LISTING_PAGES.search(source):
        return True
    last = section_path.rsplit(" > ", 1)[-1].strip().rstrip("\u00b6").strip().lower()
    if last in NAV_HEADINGS:
        return True
    return any(marker in text for marker in NAV_MARKERS)


def measure_chunks(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Chunk-quality figures over ``rows`` (the columns of the ingest table)."""
    furniture = sum(is_furniture(r["source"], r["text"], r["section_path"] or "") for r in rows)
    pilcrow = sum("\u00b6" in (r["section_path"] or "") for r in rows)
    overlaps = midword = 0
    by_source: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(r)
    for chunks in by_source.values():
        chunks.sort(key=lambda r: r["chunk_index"])
        for prev, cur in zip(chunks, chunks[1:], strict=False):
            k = cur["start"] - prev["start"]
            if cur["start"] < prev["end"] and 0 < k < len(prev["text"]):
                overlaps += 1
                if prev["text"][k - 1].isalnum() and prev["text"][k].isalnum():
                    midword += 1
    examples = [r["text"][:80] for r in rows if is_furniture(r["source"], r["text"], r["section_path"] or "")][:5]
    n = max(len(rows), 1)
    return {"chunks": len(rows), "furniture_chunks": furniture, "furniture_share": round(furniture / n, 4),
            "pilcrow_share": round(pilcrow / n, 4), "overlapping_chunks": overlaps,
            "midword_overlap_share": round(midword / max(overlaps, 1), 4), "furniture_examples": examples}


def run_ingest_bench(site: Path = DEFAULT_SITE, *, strategy: str = "structure", size: int = 1000,
                     overlap: int = 100, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()
                     ) -> dict[str, Any]:
    from ..core.settings import Settings
    from ..ingest import Options, select_files
    from ..workspace import Workspace

    if not site.is_dir():
        raise FileNotFoundError(f"{site} is not a folder (the default needs: apt-get install python3.11-doc)")
    options = Options(strategy=strategy, size=size, overlap=overlap)
    selection = select_files([site], include=include, exclude=exclude)
    with tempfile.TemporaryDirectory(prefix="brickyard-bench-ingest-") as tmp, \
            Workspace(Settings(home=Path(tmp) / "home", access_log="off"), background=False) as ws:
        p = ws.ensure_user("bench@example.com", admin=True)
        started = time.perf_counter()
        report = ws.ingest(p, [site], "main.default.bench_docs", options=options, include=include, exclude=exclude)
        first = time.perf_counter() - started
        started = time.perf_counter()
        again = ws.ingest(p, [site], "main.default.bench_docs", options=options, include=include, exclude=exclude)
        rerun = time.perf_counter() - started
        rows = ws.tables.read(p, "main.default.bench_docs").to_pylist()
        versions = len(ws.tables.history(p, "main.default.bench_docs"))
    return {
        "site": str(site), "strategy": strategy, "size": size, "overlap": overlap,
        "files": report.files, "failed": len(report.failed), "skipped": dict(selection.skipped),
        "seconds": round(first, 2), "files_per_s": round(report.files / first, 2),
        "chunks_per_s": round(report.chunks / first, 1),
        "rerun_unchanged_seconds": round(rerun, 2), "rerun_unchanged_files": again.unchanged,
        "table_versions": versions, **measure_chunks(rows),
    }
