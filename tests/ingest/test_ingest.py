"""Parsing every format into typed elements, the chunking strategies' guarantees, ``brickyard ingest``
into a Delta table followed by a Delta Sync index, and the REST ai-parse-document route."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from brickyard.core.errors import IngestionError, InvalidParameterValue
from brickyard.core.settings import Settings
from brickyard.ingest import Options, chunk, parse_file
from brickyard.ingest._parse import text_of
from brickyard.workspace import Workspace
from tests.conftest import serve
from tests.ingest.docs import SECTIONS, TITLE, write_all

pytest.importorskip("pdfplumber", reason="needs the 'ingest' extra")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("docs"))


@pytest.mark.parametrize("kind", ["md", "html", "docx", "pptx", "pdf"])
def test_structured_formats_give_typed_elements(files: dict[str, Path], kind: str) -> None:
    parsed = parse_file(files[kind])
    elements = parsed["document"]["elements"]
    types = {e["type"] for e in elements}
    assert {"title", "section_header", "text", "list_item", "table"} <= types, types
    assert elements[0]["type"] == "title" and elements[0]["content"] == TITLE
    headers = [e["content"] for e in elements if e["type"] == "section_header"]
    for name, _, _ in SECTIONS:
        assert name in headers
    table = next(e for e in elements if e["type"] == "table")
    assert table["content"].startswith("<table>") and "<td>127.0.0.1</td>" in table["content"]
    text = text_of(parsed)
    for e in elements:  # offsets point into the document text
        assert text[e["start"]:e["end"]] == e["content"]
    if kind in ("pdf", "pptx"):
        assert len(parsed["document"]["pages"]) >= 2
        assert next(e for e in elements if e["content"] == "Serving models")["page_id"] >= 1
    assert parsed["metadata"]["version"] == "2.0"


def test_html_drops_scripts_and_keeps_captions(files: dict[str, Path]) -> None:
    elements = parse_file(files["html"])["document"]["elements"]
    assert not any("alert" in e["content"] for e in elements)
    assert any(e["type"] == "caption" for e in elements)


@pytest.mark.parametrize("strategy", ["fixed", "recursive", "structure", "semantic"])
def test_chunks_point_at_their_text_and_respect_size(files: dict[str, Path], strategy: str) -> None:
    parsed = parse_file(files["md"])
    text = text_of(parsed)

    def embed(texts: list[str]) -> np.ndarray:  # two topics: installing vs serving
        return np.array([[1.0, 0.0] if "make" in t or "install" in t.lower() else [0.0, 1.0] for t in texts])

    chunks = chunk(parsed, "handbook.md", Options(strategy=strategy, size=120, overlap=20), embed=embed)
    assert chunks and [c.chunk_index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert len(c.text) <= 120 + (20 if strategy == "semantic" else 0)
        assert c.source == "handbook.md" and c.chunk_id == f"handbook.md#{c.chunk_index}"
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())  # nothing is lost
    if strategy in ("fixed", "recursive"):
        assert any(a.end > b.start for a, b in zip(chunks, chunks[1:], strict=False))  # overlap
    if strategy == "structure":
        assert any(c.section_path == f"{TITLE} > Installing" for c in chunks)
    if strategy == "semantic":
        assert not any("Endpoints serve" in c.text and "Run make demo" in c.text for c in chunks)


def test_token_chunks(files: dict[str, Path]) -> None:
    pytest.importorskip("tiktoken")
    from brickyard.models._tokens import count_tokens

    parsed = parse_file(files["md"])
    chunks = chunk(parsed, "h", Options(strategy="fixed", size=20, overlap=5, unit="tokens"))
    assert len(chunks) > 3 and all(count_tokens(c.text) <= 21 for c in chunks)


def test_bad_options_are_refused() -> None:
    for bad in (Options(strategy="magic"), Options(size=0), Options(size=10, overlap=10), Options(unit="words")):
        with pytest.raises(InvalidParameterValue):
            bad.check()


def test_cli_ingest_then_index_then_query(tmp_path: Path, files: dict[str, Path]) -> None:
    home = tmp_path / "home"
    ws = Workspace(Settings(home=home, enable_fake_models=1))
    admin = ws.ensure_user("root", admin=True)
    ws.catalog.create(admin, "schema", "main.docs")
    ws.serving.create(admin, {"name": "emb", "config": {"served_entities": [{"entity_name": "system.ai.fake-embedding"}]}})
    ws.close()
    (files["md"].parent / "broken.pdf").write_bytes(b"%PDF-1.7 this is not a pdf")
    env = {**Settings.child_environ(), "BRICKYARD_USER": "root"}
    done = subprocess.run([sys.executable, "-m", "brickyard.cli", "ingest", str(files["md"].parent), "--table",
                           "main.docs.chunks", "--home", str(home), "--json", "--strategy", "structure", "--size",
                           "400"], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["files"] == 6 and report["chunks"] > 6
    assert [f["kind"] for f in report["failed"]] == ["CORRUPT"]
    ws = Workspace(Settings(home=home, enable_fake_models=1))
    try:
        root = ws.principal("root")
        rows = ws.tables.read(root, "main.docs.chunks").to_pylist()
        assert {r["source"] for r in rows} == {f"handbook.{k}" for k in ("md", "html", "txt", "docx", "pptx", "pdf")}
        assert {Path(r["source"]).suffix for r in rows} == {".md", ".html", ".txt", ".docx", ".pptx", ".pdf"}
        ws.vectorsearch.create_endpoint(root, {"name": "vs"})
        ws.vectorsearch.create_index(root, {
            "name": "main.docs.idx", "primary_key": "chunk_id", "index_type": "DELTA_SYNC",
            "delta_sync_index_spec": {"source_table": "main.docs.chunks", "pipeline_type": "TRIGGERED",
                                      "embedding_source_columns": [{"name": "text",
                                                                    "embedding_model_endpoint_name": "emb"}]}},
            endpoint="vs")
        ws.vectorsearch.sync_now("main.docs.idx")
        hits = ws.vectorsearch.query(root, "main.docs.idx", {"query_text": "rate limits", "query_type": "FULL_TEXT",
                                                             "columns": ["source", "text"], "num_results": 3})
        assert hits["result"]["data_array"] and "Rate limits" in hits["result"]["data_array"][0][1]
        # re-ingesting a file replaces its chunks in one commit; the index follows
        files["md"].write_text(f"# {TITLE}\n\nOnly one paragraph now.\n")
        ws.ingest(root, [files["md"]], "main.docs.chunks", options=Options(strategy="structure", size=400))
        mine = [r for r in ws.tables.read(root, "main.docs.chunks").to_pylist() if r["source"] == "handbook.md"]
        assert len(mine) == 1 and "Only one paragraph" in mine[0]["text"]
        ws.vectorsearch.sync_now("main.docs.idx")
        live = ws.vectorsearch.live("main.docs.idx")
        assert live.store.count() == len(ws.tables.read(root, "main.docs.chunks").to_pylist())
    finally:
        ws.close()


def test_rest_ai_parse_document(tmp_path: Path, files: dict[str, Path]) -> None:
    import httpx

    ws = Workspace(Settings(home=tmp_path / "home"))
    token = ws.create_token("a@example.com", admin=True)
    h = {"authorization": f"Bearer {token}"}
    with serve(ws) as url:
        r = httpx.post(url + "/api/2.0/ai-functions/ai-parse-document", headers=h, timeout=60,
                       json={"content": base64.b64encode(files["docx"].read_bytes()).decode(),
                             "options": {"file_name": "handbook.docx"}})
        assert r.status_code == 200, r.text
        assert r.json()["document"]["elements"][0]["content"] == TITLE
        r = httpx.post(url + "/api/2.0/ai-functions/ai-parse-document", headers=h, timeout=60,
                       json={"content": base64.b64encode(b"PK\x03\x04garbage").decode(),
                             "options": {"file_name": "x.docx"}})
        assert r.status_code == 400 and "CORRUPT" in r.json()["message"]
    ws.close()


def test_parse_errors_are_typed(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(IngestionError) as exc:
        parse_file(empty)
    assert exc.value.kind == "CORRUPT"
    odd = tmp_path / "x.bin"
    odd.write_bytes(b"\x00\x01binary")
    with pytest.raises(IngestionError) as exc:
        parse_file(odd)
    assert exc.value.kind == "UNSUPPORTED"
