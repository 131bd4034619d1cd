"""``brickyard eval run | compare``: evaluate a serving endpoint on a dataset, and compare two runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate endpoints with judges and scorers, compare runs.")


def _run(fn: Any) -> Any:
    """The package's error handling (imported when a command runs: the package imports this module)."""
    from . import _run as run

    return run(fn)


@contextmanager
def _acting(home: Path | None, user: str | None) -> Iterator[tuple[Any, Any]]:
    """(workspace, principal) for a command, the workspace closed when it ends."""
    from . import _principal, _workspace

    ws = _run(lambda: _workspace(home))
    try:
        yield ws, _run(lambda: _principal(ws, user))
    finally:
        ws.close()


def _progress(label: str, total: int, as_json: bool) -> Any:
    """A progress bar on stderr (stdout keeps the results), off with --json; ``(bar, task)``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   transient=True, disable=as_json, console=Console(stderr=True))
    return bar, bar.add_task(label, total=total)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


@eval_app.command("run")
def eval_run(dataset: Annotated[str, typer.Option(help="An evaluation dataset (catalog.schema.table) or a .jsonl/.json "
                                                       "file of {inputs, expectations} records")],
             endpoint: Annotated[str | None, typer.Option(help="The serving endpoint to evaluate")] = None,
             model: Annotated[str | None, typer.Option(help="Or a model version, models:/catalog.schema.model/N "
                                                            "(evaluated through the endpoint that serves it)")] = None,
             scorer: Annotated[list[str] | None, typer.Option(
                 "--scorer", help="A scorer, repeated: e.g. correctness, safety, retrieval_groundedness, token_f1, "
                                  "rougeL, latency_seconds, token_cost, retrieval_mrr (an unknown name lists all)")]
             = None,
             experiment: Annotated[str | None, typer.Option(help="Experiment name [/Users/<you>/evaluations]")] = None,
             run_name: Annotated[str | None, typer.Option(help="Name of the run")] = None,
             workers: Annotated[int, typer.Option(help="Rows evaluated at once")] = 4,
             home: Annotated[Path | None, typer.Option("--home", help="Workspace directory")] = None,
             user: Annotated[str | None, typer.Option("--user", help="Act as this principal")] = None,
             as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False) -> None:
    """Send every row to ENDPOINT, score the answers, and log a run (traces, assessments, mean metrics)."""
    if (endpoint is None) == (model is None):
        typer.echo("Error: give --endpoint NAME or --model models:/catalog.schema.model/N", err=True)
        raise typer.Exit(2)
    with _acting(home, user) as (ws, p):
        if model is not None:
            endpoint = _run(lambda: ws.evaluations.endpoint_of_model(p, model))
        assert endpoint is not None
        rows = _run(lambda: ws.evaluations.rows(p, dataset))
        bar, task = _progress("evaluating", len(rows), as_json)
        with bar:
            out = _run(lambda: ws.evaluations.run(
                p, endpoint=endpoint, dataset=dataset, scorers=scorer or [], experiment=experiment, run_name=run_name,
                workers=workers, rows=rows, progress=lambda scored: bar.update(task, advance=1)))
    if as_json:
        typer.echo(json.dumps(out, default=str))
        return
    typer.echo(f"run {out['run_id']} (experiment {out['experiment_id']}): {out['rows']} rows of {dataset} on "
               f"{endpoint} in {out['seconds']:.1f} s; judge: {out['judge']}")
    width = max(len(n) for n in out["metrics"])
    typer.echo(f"{'scorer'.ljust(width)}  {'mean':>8}  {'scored':>6}  {'errors':>6}")
    for name, s in out["metrics"].items():
        typer.echo(f"{name.ljust(width)}  {_fmt(s['mean']):>8}  {s['scored']:>6}  {s['errors']:>6}")
    if out["prediction_errors"]:
        typer.echo(f"{out['prediction_errors']} rows got no answer from {endpoint} (see the traces)", err=True)


@eval_app.command("compare")
def eval_compare(run_a: str, run_b: str,
                 home: Annotated[Path | None, typer.Option("--home", help="Workspace directory")] = None,
                 user: Annotated[str | None, typer.Option("--user", help="Act as this principal")] = None,
                 as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False) -> None:
    """Two evaluation runs side by side: every metric and its change, and the rows whose verdicts differ."""
    with _acting(home, user) as (ws, p):
        out = _run(lambda: ws.evaluations.compare(p, run_a, run_b))
    if as_json:
        typer.echo(json.dumps(out, default=str))
        return
    names = [r["run_name"] or r["run_id"] for r in out["runs"]]
    width = max([len(m["metric"]) for m in out["metrics"]] + [6])
    typer.echo(f"{'metric'.ljust(width)}  {names[0][:12]:>12}  {names[1][:12]:>12}  {'change':>8}")
    for m in out["metrics"]:
        change = "-" if m["change"] is None else f"{m['change']:+.3f}"
        typer.echo(f"{m['metric'].ljust(width)}  {_fmt(m['a']):>12}  {_fmt(m['b']):>12}  {change:>8}")
    typer.echo(f"{out['rows_in_both']} rows in both runs; {len(out['changed'])} verdicts changed")
    for c in out["changed"][:50]:
        typer.echo(f"  {c['scorer']}: {_fmt(c['a'])} -> {_fmt(c['b'])}  {c['question'][:70]}")


@eval_app.command("generate")
def eval_generate(table: Annotated[str, typer.Option(help="A chunks table (catalog.schema.table)")],
                  dataset: Annotated[str, typer.Option(help="The evaluation dataset to write (created if missing)")],
                  num_evals: Annotated[int, typer.Option(help="How many questions to write")] = 20,
                  text_column: Annotated[str, typer.Option(help="The table's text column")] = "text",
                  uri_column: Annotated[str, typer.Option(help="The column naming each chunk's document")] = "source",
                  agent_description: Annotated[str | None, typer.Option(help="What the assistant does")] = None,
                  question_guidelines: Annotated[str | None, typer.Option(help="Guidelines for the questions")] = None,
                  home: Annotated[Path | None, typer.Option("--home", help="Workspace directory")] = None,
                  user: Annotated[str | None, typer.Option("--user", help="Act as this principal")] = None,
                  as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False) -> None:
    """Write synthetic questions with their expected facts from a chunks table, with the judge model."""
    with _acting(home, user) as (ws, p):
        bar, task = _progress("writing questions", num_evals, as_json)
        with bar:
            out = _run(lambda: ws.evaluations.generate(
                p, table, num_evals=num_evals, dataset=dataset, text_column=text_column, uri_column=uri_column,
                agent_description=agent_description, question_guidelines=question_guidelines,
                progress=lambda n: bar.update(task, advance=n)))
    if as_json:
        typer.echo(json.dumps(out))
        return
    typer.echo(f"{out['records']} records written to {out['dataset']}")
    for problem in out["problems"]:
        typer.echo(f"  skipped {problem}", err=True)



monitor_app = typer.Typer(no_args_is_help=True, help="Production monitoring of serving endpoints.")


@monitor_app.command("report")
def monitor_report(endpoint: str,
                   out: Annotated[Path | None, typer.Option(help="Write the report: .html (a page of plots), .png "
                                                                  "(the plots) or .json")] = None,
                   hours: Annotated[float, typer.Option(help="The window, in hours up to now")] = 168.0,
                   home: Annotated[Path | None, typer.Option("--home", help="Workspace directory")] = None,
                   user: Annotated[str | None, typer.Option("--user", help="Act as this principal")] = None,
                   as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False) -> None:
    """Quality per scheduled scorer, requests, errors, guardrail and rate-limit hits, latency p50/p99, tokens and
    cost of ENDPOINT over time."""
    with _acting(home, user) as (ws, p):
        report = _run(lambda: ws.scheduled_scorers.report(p, endpoint, hours=hours))
    if out is not None:
        from ..evaluation._report import render_html, render_png

        suffix = out.suffix.lower()
        if suffix == ".html":
            out.write_text(render_html(report))
        elif suffix == ".png":
            out.write_bytes(render_png(report))
        elif suffix == ".json":
            out.write_text(json.dumps(report, indent=2))
        else:
            typer.echo("Error: --out must end in .html, .png or .json", err=True)
            raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(report))
        return
    t = report["totals"]
    typer.echo(f"{endpoint}: {report['start']} to {report['end']}")
    typer.echo(f"  requests {t['requests']}, error rate {_fmt(t['error_rate'])}, guardrail hits {t['guardrail_hits']}, "
               f"rate limited {t['rate_limited']}")
    typer.echo(f"  latency p50 {_fmt(t['latency_p50_ms'])} ms, p99 {_fmt(t['latency_p99_ms'])} ms; tokens "
               f"{t['input_tokens']} in, {t['output_tokens']} out; cost {_fmt(t['cost'])}")
    for name, value in t["quality"].items():
        typer.echo(f"  quality {name}: {_fmt(value)}")
    if out is not None:
        typer.echo(f"wrote {out}")
