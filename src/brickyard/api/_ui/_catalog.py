"""Catalog explorer: catalogs, schemas and what they hold; a table's columns, sample rows (at any version),
history, grants (owners and managers edit them) and lineage; volumes' files (browse, upload, download);
functions; registered models with their versions and aliases. Every read goes through the catalog as the
signed-in user, exactly as the REST API's does."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from markupsafe import Markup
from starlette.responses import FileResponse, PlainTextResponse, Response

from ...catalog import Securable
from ...core.errors import InvalidParameterValue
from ...core.names import parse_name, quote_part
from .._http import Req
from ._pages import Pages, form, redirect
from ._render import HEADERS, render

SAMPLE_ROWS = 50
CELL_CHARS = 2000
LIST_LIMIT = 500


def href(kind: str, full_name: str) -> str:
    """The page of a securable (or of a serving endpoint)."""
    parts = [quote(p, safe="") for p in full_name.split(".")]
    if kind == "serving_endpoint":
        return "/ml/endpoints/" + quote(full_name, safe="")
    prefix = {"volume": "/explore/data/volumes/", "function": "/explore/data/functions/",
              "registered_model": "/explore/data/models/"}.get(kind, "/explore/data/")
    return prefix + "/".join(parts)


def cell(value: Any) -> str:
    if value is None:
        return "NULL"
    text = value if isinstance(value, str) else repr(value) if isinstance(value, bytes) else str(value)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + " …"


def rows_view(table: Any) -> dict[str, Any]:
    names = table.column_names
    return {"columns": names, "rows": [[cell(v) for v in row] for row in zip(
        *(c.to_pylist() for c in table.columns), strict=True)] if names else []}


def register(pages: Pages, ws: Any) -> None:
    cat = ws.catalog

    def listed(req: Req, kind: str, parent: str | None) -> list[Securable]:
        items, _ = cat.list(req.user, kind, parent, max_results=LIST_LIMIT)
        return items

    def crumbs(*parts: str) -> list[tuple[str, str]]:
        out = [("/explore/data", "Catalog")]
        for i in range(len(parts)):
            out.append(("/explore/data/" + "/".join(quote(p, safe="") for p in parts[: i + 1]), parts[i]))
        return out

    @pages.get("/explore/data", "catalog")
    def catalogs(req: Req, ctx: dict[str, Any]) -> Response:
        return render("catalogs.html", **ctx, title="Catalog", items=listed(req, "catalog", None), href=href)

    @pages.get("/explore/data/{catalog}", "catalog")
    def catalog(req: Req, ctx: dict[str, Any]) -> Response:
        obj = cat.get(req.user, "catalog", req.path["catalog"])
        return render("catalog.html", **{**ctx, "crumbs": crumbs(obj.name)}, title=obj.name, obj=obj,
                      items=listed(req, "schema", obj.full_name), href=href)

    @pages.get("/explore/data/{catalog}/{schema}", "catalog")
    def schema(req: Req, ctx: dict[str, Any]) -> Response:
        obj = cat.get(req.user, "schema", f"{req.path['catalog']}.{req.path['schema']}")
        groups = [(label, kind, listed(req, kind, obj.full_name)) for label, kind in (
            ("Tables and views", "table"), ("Volumes", "volume"), ("Functions", "function"),
            ("Registered models", "registered_model"))]
        prompts, _ = ws.prompts.search(req.user, {"catalog_name": obj.parts[0], "schema_name": obj.parts[1]},
                                       max_results=100)
        return render("schema.html", **{**ctx, "crumbs": crumbs(*obj.parts)}, title=obj.full_name, obj=obj,
                      groups=groups, href=href, prompts=prompts)

    # -- tables ------------------------------------------------------------------------------------------------
    TABS = ("columns", "sample", "history", "grants", "lineage")

    @pages.get("/explore/data/{catalog}/{schema}/{table}", "catalog")
    def table(req: Req, ctx: dict[str, Any]) -> Response:
        full = str(parse_name(".".join(quote_part(req.path[k]) for k in ("catalog", "schema", "table")), 3))
        obj = cat.get(req.user, "table", full)
        if obj.spec.get("data_source_format") == "VECTOR_INDEX_FORMAT":  # an index: its own page has the query box
            return redirect("/compute/vector-search/indexes/" + quote(full, safe=""))
        tab = req.query.get("tab") or "columns"
        if tab not in TABS:
            raise InvalidParameterValue(f"unknown tab {tab!r}; one of {', '.join(TABS)}")
        view: dict[str, Any] = {"tab": tab, "tabs": TABS, "obj": obj, "kind": "table",
                                "columns": ws.tables.describe(obj)[0],
                                "table_type": str(obj.spec.get("table_type") or "MANAGED")}
        if tab == "sample":
            version = req.query.get("version")
            at = None if not version else _int(version, "version")
            view.update(rows_view(ws.tables.read(req.user, full, version=at, limit=SAMPLE_ROWS)), version=at,
                        limit=SAMPLE_ROWS)
        elif tab == "history":
            view["history"] = [] if view["table_type"] == "VIEW" else ws.tables.history(req.user, full, limit=100)
        elif tab == "grants":
            view.update(grants_view(req, "table", full))
        elif tab == "lineage":
            view.update(lineage_view(req, "table", full))
        return render("table.html", **{**ctx, "crumbs": crumbs(*obj.parts)}, title=obj.full_name, **view, href=href)

    def grants_view(req: Req, kind: str, full: str) -> dict[str, Any]:
        from ...catalog._privileges import APPLICABLE

        assignments = cat.grants(req.user, kind, full)
        obj = cat.get(req.user, kind, full)
        can_edit = cat.check(req.user, "MANAGE", obj).allowed
        return {"assignments": assignments, "can_edit": can_edit,
                "privileges": sorted(APPLICABLE[obj.kind]), "grant_action": href(kind, full) + "/grants"}

    def lineage_view(req: Req, kind: str, full: str) -> dict[str, Any]:
        edges = cat.lineage(req.user, kind, full)
        return {"upstreams": edges["upstreams"], "downstreams": edges["downstreams"],
                "graph": Markup(lineage_svg(full, edges["upstreams"], edges["downstreams"]))}

    def grant_post(kind: str, full: str, back: str, req: Req) -> Response:
        principal = form(req, "principal").strip()
        privilege = form(req, "privilege").strip()
        action = form(req, "action")
        if not principal or not privilege or action not in ("add", "remove"):
            raise InvalidParameterValue("choose a principal, a privilege and add or remove")
        cat.update_grants(req.user, kind, full, [{"principal": principal, action: [privilege]}])
        verb = "granted to" if action == "add" else "revoked from"
        return redirect(back + ("?tab=grants" if kind == "table" else ""), f"{privilege} {verb} {principal}")

    @pages.post("/explore/data/{catalog}/{schema}/{table}/grants", "catalog")
    def table_grants(req: Req, ctx: dict[str, Any]) -> Response:
        full = str(parse_name(".".join(quote_part(req.path[k]) for k in ("catalog", "schema", "table")), 3))
        return grant_post("table", full, href("table", full), req)

    # -- volumes -------------------------------------------------------------------------------------------------
    @pages.get("/explore/data/volumes/{catalog}/{schema}/{volume}", "catalog")
    def volume(req: Req, ctx: dict[str, Any]) -> Response:
        full = f"{req.path['catalog']}.{req.path['schema']}.{req.path['volume']}"
        obj = cat.get(req.user, "volume", full)
        sub = (req.query.get("path") or "").strip("/")
        base = "/Volumes/" + "/".join(obj.parts) + (f"/{sub}" if sub else "")
        entries, _ = ws.volumes.list(req.user, base, page_size=1000)
        parent = sub.rsplit("/", 1)[0] if "/" in sub else ("" if sub else None)
        return render("volume.html", **{**ctx, "crumbs": crumbs(*obj.parts[:2])}, title=obj.full_name, obj=obj,
                      entries=entries, sub=sub, parent=parent, base=base, self_href=href("volume", full))

    @pages.get("/explore/data/volumes/{catalog}/{schema}/{volume}/download", "catalog")
    def volume_download(req: Req, ctx: dict[str, Any]) -> Response:
        full = f"{req.path['catalog']}.{req.path['schema']}.{req.path['volume']}"
        sub = (req.query.get("path") or "").strip("/")
        if not sub:
            raise InvalidParameterValue("say which file: ?path=...")
        path = "/Volumes/" + full.replace(".", "/") + "/" + sub
        info, local = ws.volumes.open(req.user, path)
        headers = {**HEADERS, "Content-Disposition": f"attachment; filename*=UTF-8''{quote(info.name, safe='')}"}
        return FileResponse(local, media_type="application/octet-stream", headers=headers)

    @pages.post("/explore/data/volumes/{catalog}/{schema}/{volume}/upload", "catalog")
    def volume_upload(req: Req, ctx: dict[str, Any]) -> Response:
        full = f"{req.path['catalog']}.{req.path['schema']}.{req.path['volume']}"
        sub = form(req, "path").strip("/")
        name = form(req, "name").strip()
        if not name or "/" in name or name in (".", ".."):
            raise InvalidParameterValue("give the file a name without '/'")
        path = "/Volumes/" + full.replace(".", "/") + (f"/{sub}" if sub else "") + "/" + name
        ws.volumes.upload(req.user, path, form(req, "content").encode(), overwrite=False)
        back = href("volume", full) + (f"?path={quote(sub)}" if sub else "")
        return redirect(back, f"uploaded {name}")

    @pages.upload("/explore/data/volumes/{catalog}/{schema}/{volume}/upload-file", "catalog")
    def volume_upload_file(req: Req, ctx: dict[str, Any]) -> Response:
        full = f"{req.path['catalog']}.{req.path['schema']}.{req.path['volume']}"
        sub = (req.query.get("path") or "").strip("/")
        name = (req.query.get("name") or "").strip()
        if not name or "/" in name or name in (".", ".."):
            raise InvalidParameterValue("give the file a name without '/'")
        path = "/Volumes/" + full.replace(".", "/") + (f"/{sub}" if sub else "") + "/" + name
        info = ws.volumes.upload(req.user, path, req.file, overwrite=False)
        return PlainTextResponse(f"uploaded {info.name}", headers=HEADERS)

    # -- functions and models ------------------------------------------------------------------------------------
    @pages.get("/explore/data/functions/{catalog}/{schema}/{function}", "catalog")
    def function(req: Req, ctx: dict[str, Any]) -> Response:
        full = f"{req.path['catalog']}.{req.path['schema']}.{req.path['function']}"
        obj = cat.get(req.user, "function", full)
        return render("function.html", **{**ctx, "crumbs": crumbs(*obj.parts[:2])}, title=obj.full_name, obj=obj,
                      spec=obj.spec, **grants_view(req, "function", full))

    @pages.get("/explore/data/prompts/{catalog}/{schema}/{prompt}", "catalog")
    def prompt(req: Req, ctx: dict[str, Any]) -> Response:
        full = f"{req.path['catalog']}.{req.path['schema']}.{req.path['prompt']}"
        info = ws.prompts.get(req.user, full)
        versions, _ = ws.prompts.versions(req.user, full, max_results=100)
        by_number = {v["version"]: v for v in versions}
        numbers = sorted(by_number, key=int)
        a = req.query.get("a") or (numbers[-2] if len(numbers) > 1 else None)
        b = req.query.get("b") or (numbers[-1] if numbers else None)
        diff = None
        if a and b:
            if a not in by_number or b not in by_number:
                raise InvalidParameterValue("compare two versions of this prompt")
            diff = diff_lines(by_number[a]["template"], by_number[b]["template"])
        return render("prompt.html", **{**ctx, "crumbs": crumbs(req.path["catalog"], req.path["schema"])},
                      title=info["name"], info=info, versions=sorted(versions, key=lambda v: -int(v["version"])),
                      numbers=numbers, a=a, b=b, diff=diff)

    @pages.post("/explore/data/functions/{catalog}/{schema}/{function}/grants", "catalog")
    def function_grants(req: Req, ctx: dict[str, Any]) -> Response:
        full = f"{req.path['catalog']}.{req.path['schema']}.{req.path['function']}"
        return grant_post("function", full, href("function", full), req)

    @pages.get("/explore/data/models/{catalog}/{schema}/{model}", "catalog")
    def model(req: Req, ctx: dict[str, Any]) -> Response:
        full = f"{req.path['catalog']}.{req.path['schema']}.{req.path['model']}"
        obj = cat.get(req.user, "registered_model", full)
        versions, _ = cat.model_versions(req.user, full, max_results=100)
        return render("model.html", **{**ctx, "crumbs": crumbs(*obj.parts[:2])}, title=obj.full_name, obj=obj,
                      aliases=cat.aliases(obj), versions=versions, **lineage_view(req, "registered_model", full),
                      href=href)


def diff_lines(old: str, new: str) -> list[tuple[str, str]]:
    """A line diff of two texts as (kind, line): kind is "same", "added" or "removed"."""
    import difflib

    out: list[tuple[str, str]] = []
    for line in difflib.ndiff(old.splitlines(), new.splitlines()):
        tag, text = line[:2], line[2:]
        if tag == "? ":
            continue
        out.append(({"+ ": "added", "- ": "removed"}.get(tag, "same"), text))
    return out


def _int(value: str, name: str) -> int:
    try:
        out = int(value)
    except ValueError:
        raise InvalidParameterValue(f"{name} must be a whole number") from None
    if out < 0:
        raise InvalidParameterValue(f"{name} must not be negative")
    return out


def lineage_svg(center: str, ups: list[dict[str, Any]], downs: list[dict[str, Any]]) -> str:
    """Upstream objects on the left, this one in the middle, downstream on the right, joined by arrows."""
    from html import escape

    rows = max(1, len(ups), len(downs))
    height, width, box_w, box_h = 40 + rows * 46, 900, 250, 32

    def column(items: list[dict[str, Any]], x: float) -> list[tuple[float, float, dict[str, Any]]]:
        gap = height / (len(items) + 1) if items else 0
        return [(x, gap * (i + 1), e) for i, e in enumerate(items)]

    mid = (width / 2, height / 2)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" class="lineage" '
             f'aria-label="lineage of {escape(center)}">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#57606a"/></marker></defs>']

    def box(x: float, y: float, label: str, kind: str, strong: bool = False) -> str:
        text = label if len(label) <= 34 else "…" + label[-33:]
        return (f'<rect x="{x - box_w / 2:.0f}" y="{y - box_h / 2:.0f}" width="{box_w}" height="{box_h}" rx="5" '
                f'fill="{"#dbe9f7" if strong else "#f6f8fa"}" stroke="#8c959f"/>'
                f'<text x="{x:.0f}" y="{y - 2:.0f}" text-anchor="middle" class="tick">{escape(text)}</text>'
                f'<text x="{x:.0f}" y="{y + 11:.0f}" text-anchor="middle" class="tick">{escape(kind)}</text>')

    for x, y, e in column(ups, 140):
        parts.append(f'<line x1="{x + box_w / 2:.0f}" y1="{y:.0f}" x2="{mid[0] - box_w / 2:.0f}" y2="{mid[1]:.0f}" '
                     'stroke="#8c959f" marker-end="url(#arrow)"/>')
        parts.append(box(x, y, e["full_name"], e["kind"]))
    for x, y, e in column(downs, width - 140):
        parts.append(f'<line x1="{mid[0] + box_w / 2:.0f}" y1="{mid[1]:.0f}" x2="{x - box_w / 2:.0f}" y2="{y:.0f}" '
                     'stroke="#8c959f" marker-end="url(#arrow)"/>')
        parts.append(box(x, y, e["full_name"], e["kind"]))
    parts.append(box(mid[0], mid[1], center, "this", strong=True))
    parts.append("</svg>")
    return "".join(parts)


