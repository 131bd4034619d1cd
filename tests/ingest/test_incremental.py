"""Ingesting a folder is incremental and idempotent (issue 18, points 3 and 4): sources are paths relative to
the folder, build folders and hidden files are skipped and reported, include/exclude globs choose the files,
an unchanged file is skipped by its hash, a changed one replaced, a deleted one removed with
``delete_missing``, and every run is one Delta commit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from brickyard.catalog import Principal
from brickyard.core.errors import InvalidParameterValue
from brickyard.core.settings import Settings
from brickyard.ingest import Options, glob_regex, select_files
from brickyard.workspace import Workspace

TABLE = "main.default.docs"
OPTS = Options(strategy="structure", size=400, overlap=0)


def page(title: str, body: str) -> str:
    return f"<html><body><h1>{title}</h1><p>{body}</p></body></html>"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    for rel, text in {
        "index.html": page("Home", "Welcome to the manual."),
        "library/functools.html": page("functools", "Higher-order functions and operations on callables."),
        "howto/functools.html": page("Functional HOWTO", "A second page that is also called functools."),
        "guide/intro.md": "# Intro\n\nMarkdown pages are taken too.\n",
        "_sources/library/functools.rst.txt": "functools\n=========\n\nThe reST copy of a page.\n",
        "_static/basic.html": page("Static", "A theme file."),
        "node_modules/pkg/readme.md": "# pkg\n\nNot ours.\n",
        ".git/description.txt": "Unnamed repository\n",
        ".notes.md": "# hidden\n",
        "objects.inv": "binary inventory",
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Workspace, Principal]]:
    ws = Workspace(Settings(home=tmp_path / "home"), background=False)
    yield ws, ws.ensure_user("admin@example.com", admin=True)
    ws.close()


def sources(ws: Workspace, p: Principal) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for row in ws.tables.read(p, TABLE, columns=["source", "text"]).to_pylist():
        out.setdefault(row["source"], []).append(row["text"])
    return out


def versions(ws: Workspace, p: Principal) -> int:
    return len(ws.tables.history(p, TABLE))


def test_a_folder_is_selected_by_relative_path_without_build_folders_or_hidden_files(site: Path) -> None:
    sel = select_files([site])
    assert sorted(s for _, s in sel.files) == ["guide/intro.md", "howto/functools.html", "index.html",
                                               "library/functools.html"]
    assert sel.skipped == {"build folder": 3, "hidden": 2, "unsupported type": 1}
    assert "_sources/" in sel.samples["build folder"] and ".notes.md" in sel.samples["hidden"]
    only_library = select_files([site], include=["library/**"])
    assert [s for _, s in only_library.files] == ["library/functools.html"]
    assert only_library.skipped["not included"] == 3
    no_md = select_files([site], exclude=["*.md"])
    assert "guide/intro.md" not in [s for _, s in no_md.files] and no_md.skipped["excluded"] == 1
    # a build folder named by an include glob is walked
    sources_copy = select_files([site], include=["_sources/**/*.txt"])
    assert [s for _, s in sources_copy.files] == ["_sources/library/functools.rst.txt"]
    # one file, named relative to --root, is the same source the folder run wrote
    one = select_files([site / "library" / "functools.html"], root=site)
    assert [s for _, s in one.files] == ["library/functools.html"]
    with pytest.raises(InvalidParameterValue, match="not inside"):
        select_files([site / "library" / "functools.html"], root=site / "howto")


def test_globs() -> None:
    assert glob_regex("*.html").match("a/b/c.html") and not glob_regex("*.html").match("a/b/c.htm")
    assert glob_regex("library/*.html").match("library/x.html")
    assert not glob_regex("library/*.html").match("library/sub/x.html")
    assert glob_regex("library/**/*.html").match("library/x.html")
    assert glob_regex("library/**/*.html").match("library/a/b/x.html")
    assert glob_regex("library/").match("library/a/x.html")
    assert glob_regex("[!_]*.md").match("intro.md") and not glob_regex("[!_]*.md").match("_intro.md")
    assert glob_regex("page?.md").match("page1.md") and not glob_regex("page?.md").match("page10.md")
    for bad in ("", "   ", "x[ab", "a" * 1001):
        with pytest.raises(InvalidParameterValue):
            glob_regex(bad)


def test_reingest_skips_unchanged_replaces_changed_and_removes_deleted_in_one_commit(
        site: Path, env: tuple[Workspace, Principal]) -> None:
    ws, p = env
    first = ws.ingest(p, [site], TABLE, options=OPTS)
    assert (first.files, first.unchanged, first.version) == (4, 0, 1)
    assert versions(ws, p) == 2  # CREATE TABLE + one write for four files
    before = sources(ws, p)
    assert set(before) == {"guide/intro.md", "howto/functools.html", "index.html", "library/functools.html"}

    again = ws.ingest(p, [site], TABLE, options=OPTS)
    assert (again.files, again.unchanged, again.version) == (0, 4, None)
    assert versions(ws, p) == 2  # nothing changed: no commit

    (site / "library" / "functools.html").write_text(page("functools", "Rewritten: cache and partial."))
    (site / "guide" / "new.md").write_text("# New\n\nA page added later.\n")
    (site / "index.html").unlink()
    kept = ws.ingest(p, [site], TABLE, options=OPTS)  # without delete_missing, a deleted file's chunks stay
    assert (kept.files, kept.unchanged, kept.deleted) == (2, 2, 0)
    after = sources(ws, p)
    assert "index.html" in after and "guide/new.md" in after
    assert any("Rewritten" in t for t in after["library/functools.html"])
    assert not any("Higher-order" in t for t in after["library/functools.html"])
    assert after["howto/functools.html"] == before["howto/functools.html"]  # the other functools is untouched

    gone = ws.ingest(p, [site], TABLE, options=OPTS, delete_missing=True)
    assert (gone.files, gone.unchanged, gone.deleted) == (0, 4, 1)
    assert "index.html" not in sources(ws, p)
    assert versions(ws, p) == 4  # one commit per run that changed something
    ops = [h.get("operation") for h in ws.tables.history(p, TABLE)]
    assert ops.count("CREATE TABLE") == 1 and len(ops) == 4


def test_one_file_reingested_on_its_own_replaces_its_chunks(site: Path, env: tuple[Workspace, Principal]) -> None:
    ws, p = env
    ws.ingest(p, [site], TABLE, options=OPTS)
    target = site / "howto" / "functools.html"
    target.write_text(page("Functional HOWTO", "Now about generators."))
    report = ws.ingest(p, [target], TABLE, options=OPTS, root=site)
    assert report.files == 1
    rows = sources(ws, p)
    assert rows["howto/functools.html"] and all("generators" in t or "HOWTO" in t for t in rows["howto/functools.html"])
    assert len(rows) == 4


def test_a_file_that_now_fails_to_parse_keeps_its_chunks(site: Path, env: tuple[Workspace, Principal]) -> None:
    ws, p = env
    ws.ingest(p, [site], TABLE, options=OPTS)
    (site / "guide" / "intro.md").write_bytes(b"")  # an empty file is refused by the parser
    report = ws.ingest(p, [site], TABLE, options=OPTS)
    assert [f["source"] for f in report.failed] == ["guide/intro.md"] and report.version is None
    assert any("Markdown pages" in t for t in sources(ws, p)["guide/intro.md"])


@pytest.mark.parametrize("where", ["in-process", "through-the-server"])
def test_cli_ingest_index_waits_until_the_index_answers(site: Path, tmp_path: Path, where: str) -> None:
    """``brickyard ingest --index`` creates the index, then syncs it on later runs, and returns once queries
    see every chunk: in its own process, or through the server that holds the home."""
    import contextlib
    import json
    import subprocess
    import sys

    from tests.conftest import serve_process

    home = tmp_path / "home"
    with Workspace(Settings(home=home, enable_fake_models=1), background=False) as ws:
        admin = ws.ensure_user("root", admin=True)
        ws.serving.create(admin, {"name": "emb", "config": {"served_entities": [
            {"entity_name": "system.ai.fake-embedding"}]}})
    env = {**Settings.child_environ(), "BRICKYARD_USER": "root", "BRICKYARD_HOME": str(home),
           "BRICKYARD_ENABLE_FAKE_MODELS": "1"}
    server = serve_process(home, env={"BRICKYARD_ENABLE_FAKE_MODELS": "1"}) if where == "through-the-server" \
        else contextlib.nullcontext()

    def ingest() -> dict[str, object]:
        done = subprocess.run([sys.executable, "-m", "brickyard.cli", "ingest", str(site), "--table", TABLE, "--json",
                               "--strategy", "structure", "--index", "main.default.docs_index", "--embedding-model",
                               "emb"], capture_output=True, text=True, env=env, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    with server:
        first = ingest()
        (site / "guide" / "more.md").write_text("# More\n\nOne more page about zebras.\n")
        second = ingest()
    with Workspace(Settings(home=home, enable_fake_models=1), background=False) as ws:
        p = ws.principal("root")
        chunks = ws.tables.read(p, TABLE).num_rows
        status = ws.vectorsearch.get_index(p, "main.default.docs_index")["status"]
    assert first["index"]["indexed_row_count"] == first["chunks"]  # type: ignore[index]
    assert second["files"] == 1 and second["unchanged"] == 4
    assert second["index"]["indexed_row_count"] == chunks == status["indexed_row_count"]  # type: ignore[index]
    assert chunks == first["chunks"] + second["chunks"]  # type: ignore[operator]
    assert status["ready"] is True
