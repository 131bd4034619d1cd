"""Experiments: the list, an experiment's runs (params and metrics side by side, chosen runs compared) and
traces (with their assessments: an evaluation's per-row scores and rationales), a run's page with its metric
histories drawn, and a trace's span tree with inputs, outputs, attributes and timing bars. The URLs are the
ones MLflow prints (``/ml/experiments/{id}/runs/{run}``)."""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup
from starlette.responses import Response

from ...core.errors import InvalidParameterValue
from .._http import Req
from ._pages import Pages
from ._render import render, svg_chart

MAX_RUNS = 200
MAX_TRACES = 100
MAX_COMPARE = 8


def _loads(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _kv(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {i["key"]: i["value"] for i in items or []}


def span_tree(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spans in depth-first order with their depth and their place on the trace's time line (percent)."""
    by_parent: dict[Any, list[dict[str, Any]]] = {}
    ids = {s.get("span_id") for s in spans}
    for s in spans:
        parent = s.get("parent_span_id") if s.get("parent_span_id") in ids else None
        by_parent.setdefault(parent, []).append(s)
    starts = [int(s.get("start_time_unix_nano") or 0) for s in spans]
    ends = [int(s.get("end_time_unix_nano") or 0) for s in spans]
    t0, t1 = (min(starts), max(ends)) if spans else (0, 1)
    total = max(1, t1 - t0)
    out: list[dict[str, Any]] = []

    def walk(parent: Any, depth: int) -> None:
        for s in sorted(by_parent.get(parent, []), key=lambda x: int(x.get("start_time_unix_nano") or 0)):
            if len(out) >= 2000 or depth > 64:
                return
            start, end = int(s.get("start_time_unix_nano") or 0), int(s.get("end_time_unix_nano") or 0)
            attrs = dict(s.get("attributes") or {})
            inputs, outputs = _loads(attrs.pop("mlflow.spanInputs", None)), _loads(attrs.pop("mlflow.spanOutputs", None))
            out.append({"name": s.get("name") or "(span)", "depth": depth, "type": _loads(attrs.get("mlflow.spanType")),
                        "ms": max(0, end - start) / 1e6, "left": (start - t0) / total * 100,
                        "width": max(0.5, (end - start) / total * 100), "inputs": inputs, "outputs": outputs,
                        "attributes": {k: _loads(v) for k, v in attrs.items()},
                        "status": (s.get("status") or {}).get("code") or ""})
            walk(s.get("span_id"), depth + 1)

    walk(None, 0)
    return out


def register(pages: Pages, ws: Any) -> None:
    tracking, traces = ws.tracking, ws.traces

    def crumbs(exp: dict[str, Any] | None = None, *more: tuple[str, str]) -> list[tuple[str, str]]:
        out = [("/ml/experiments", "Experiments")]
        if exp is not None:
            out.append((f"/ml/experiments/{exp['experiment_id']}", exp["name"]))
        return out + list(more)

    @pages.get("/ml/experiments", "experiments")
    def experiments(req: Req, ctx: dict[str, Any]) -> Response:
        items, _ = tracking.search_experiments(req.user, max_results=1000)
        return render("experiments.html", **{**ctx, "crumbs": crumbs()}, title="Experiments", items=items)

    @pages.get("/ml/experiments/{experiment_id}", "experiments")
    def experiment(req: Req, ctx: dict[str, Any]) -> Response:
        exp = tracking.get_experiment(req.user, req.path["experiment_id"])
        tab = req.query.get("tab") or "runs"
        if tab not in ("runs", "traces", "models"):
            raise InvalidParameterValue("tab must be runs, traces or models")
        apps = ws.review_apps.list(req.user, f"experiment_id={exp['experiment_id']}")["review_apps"]
        reviews = [{"app": a, "sessions": ws.review_apps.list_sessions(req.user, a["review_app_id"],
                                                                        page_size=100)["labeling_sessions"]}
                   for a in apps]
        view: dict[str, Any] = {"exp": exp, "tab": tab, "reviews": reviews}
        if tab == "runs":
            runs, _ = tracking.search_runs(req.user, [exp["experiment_id"]], max_results=MAX_RUNS)
            params = sorted({p["key"] for r in runs for p in r["data"].get("params", [])})[:20]
            metrics = sorted({m["key"] for r in runs for m in r["data"].get("metrics", [])})[:20]
            view.update(runs=[{"info": r["info"], "params": _kv(r["data"].get("params", [])),
                               "metrics": _kv(r["data"].get("metrics", [])),
                               "name": _kv(r["data"].get("tags", [])).get("mlflow.runName") or r["info"]["run_id"]}
                              for r in runs], params=params, metrics=metrics)
        elif tab == "models":
            models, _ = ws.logged_models.search(req.user, [exp["experiment_id"]], max_results=MAX_RUNS)
            view["models"] = [{"info": m["info"], "params": _kv(m["data"].get("params", [])),
                               "metrics": {x["key"]: x["value"] for x in m["data"].get("metrics", [])}}
                              for m in models]
        else:
            found, _ = traces.search(req.user, [exp["experiment_id"]], max_results=MAX_TRACES)
            names = sorted({a.get("assessment_name") for t in found for a in t.get("assessments") or []
                            if a.get("assessment_name")})[:12]
            rows = []
            for t in found:
                scores = {}
                for a in t.get("assessments") or []:
                    kind = "feedback" if "feedback" in a else "expectation"
                    scores[a.get("assessment_name")] = {"value": (a.get(kind) or {}).get("value"),
                                                        "rationale": a.get("rationale") or ""}
                rows.append({"info": t, "scores": scores})
            view.update(traces=rows, assessment_names=names)
        return render("experiment.html", **{**ctx, "crumbs": crumbs()}, title=exp["name"], **view)

    @pages.get("/ml/experiments/{experiment_id}/runs/{run_id}", "experiments")
    def run(req: Req, ctx: dict[str, Any]) -> Response:
        found = tracking.get_run(req.user, req.path["run_id"])
        if found["info"]["experiment_id"] != req.path["experiment_id"]:
            raise InvalidParameterValue("that run belongs to another experiment")
        exp = tracking.get_experiment(req.user, found["info"]["experiment_id"])
        charts = []
        for m in sorted(found["data"].get("metrics", []), key=lambda m: m["key"])[:12]:
            history, _ = tracking.metric_history(req.user, found["info"]["run_id"], m["key"], max_results=1000)
            if len(history) > 1:
                charts.append((m["key"], Markup(svg_chart("line", [h["step"] for h in history],
                                                          {m["key"]: [_num(h["value"]) for h in history]},
                                                          title=m["key"]))))
        tags = _kv(found["data"].get("tags", []))
        linked, _ = traces.search(req.user, [exp["experiment_id"]], filter=f"run_id = '{found['info']['run_id']}'",
                                  max_results=MAX_TRACES)
        name = tags.get("mlflow.runName") or found["info"]["run_id"]
        return render("run.html", **{**ctx, "crumbs": crumbs(exp)}, title=name, run=found, exp=exp,
                      params=_kv(found["data"].get("params", [])), metrics=_kv(found["data"].get("metrics", [])),
                      tags={k: v for k, v in tags.items() if not k.startswith("mlflow.")}, charts=charts,
                      traces=linked)

    @pages.get("/ml/experiments/{experiment_id}/compare", "experiments")
    def compare(req: Req, ctx: dict[str, Any]) -> Response:
        exp = tracking.get_experiment(req.user, req.path["experiment_id"])
        ids = list(dict.fromkeys(req.query_lists.get("runs") or []))[:MAX_COMPARE]
        if len(ids) < 2:
            raise InvalidParameterValue("choose at least two runs to compare")
        runs = [tracking.get_run(req.user, i) for i in ids]
        names = [_kv(r["data"].get("tags", [])).get("mlflow.runName") or r["info"]["run_id"] for r in runs]
        params = sorted({p["key"] for r in runs for p in r["data"].get("params", [])})
        metrics = sorted({m["key"] for r in runs for m in r["data"].get("metrics", [])})
        table = [{"key": k, "kind": "param", "values": [_kv(r["data"].get("params", [])).get(k) for r in runs]}
                 for k in params] + [{"key": k, "kind": "metric", "values": [
                     _kv(r["data"].get("metrics", [])).get(k) for r in runs]} for k in metrics]
        charts = [(k, Markup(svg_chart("bar", names, {k: [_num(v) for v in row["values"]]}, title=k)))
                  for k, row in ((r["key"], r) for r in table if r["kind"] == "metric")][:12]
        return render("compare.html", **{**ctx, "crumbs": crumbs(exp)}, title="Compare runs", exp=exp, runs=runs,
                      names=names, table=table, charts=charts, rows=per_row(req, exp, runs))

    def per_row(req: Req, exp: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
        """Evaluation runs side by side, row by row: each row's question and every run's scores on it (rows are
        matched by the digest of their inputs, which evaluation traces carry)."""
        by_run: list[dict[str, dict[str, Any]]] = []
        questions: dict[str, str] = {}
        names: set[str] = set()
        for r in runs:
            found, _ = traces.search(req.user, [exp["experiment_id"]], filter=f"run_id = '{r['info']['run_id']}'",
                                     max_results=MAX_TRACES)
            rows: dict[str, Any] = {}
            for t in found:
                key = (t.get("trace_metadata") or {}).get("brickyard.eval.row")
                if not key:
                    continue
                questions.setdefault(key, t.get("request_preview") or "")
                scores = {}
                for a in t.get("assessments") or []:
                    if "feedback" in a:
                        scores[a.get("assessment_name")] = {"value": (a["feedback"] or {}).get("value"),
                                                            "rationale": a.get("rationale") or ""}
                        names.add(a.get("assessment_name"))
                rows[key] = scores
            by_run.append(rows)
        keys = [k for k in questions if sum(1 for rows in by_run if k in rows) > 1]
        return {"names": sorted(n for n in names if n)[:8], "keys": keys[:MAX_TRACES], "questions": questions,
                "by_run": by_run}

    @pages.get("/ml/experiments/{experiment_id}/traces/{trace_id}", "experiments")
    def trace(req: Req, ctx: dict[str, Any]) -> Response:
        info = traces.get_info(req.user, req.path["trace_id"])
        exp = tracking.get_experiment(req.user, req.path["experiment_id"])
        try:
            spans = json.loads(traces.read_spans(req.user, req.path["trace_id"])).get("spans") or []
        except ValueError:
            spans = []
        assessments = []
        for a in info.get("assessments") or []:
            kind = "feedback" if "feedback" in a else "expectation"
            assessments.append({"name": a.get("assessment_name"), "kind": kind,
                                "value": (a.get(kind) or {}).get("value"), "rationale": a.get("rationale") or "",
                                "source": (a.get("source") or {}).get("source_id") or ""})
        return render("trace.html", **{**ctx, "crumbs": crumbs(exp, (f"/ml/experiments/{exp['experiment_id']}?tab=traces",
                                                                   "Traces"))},
                      title=f"Trace {info.get('trace_id')}", info=info, spans=span_tree(spans), exp=exp,
                      assessments=assessments)

    # the URL the review pages and other clients link traces by
    @pages.get("/ml/traces/{trace_id}", "experiments")
    def trace_by_id(req: Req, ctx: dict[str, Any]) -> Response:
        from ._pages import redirect

        info = traces.get_info(req.user, req.path["trace_id"])
        location = (info.get("trace_location") or {}).get("mlflow_experiment") or {}
        eid = location.get("experiment_id") or info.get("experiment_id")
        return redirect(f"/ml/experiments/{eid}/traces/{req.path['trace_id']}")


def _num(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
