"""The ``brickyard`` command: thin wrappers over the library (errors become messages and exit codes)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ..core.errors import BrickyardError, InvalidParameterValue

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Brickyard: a local Databricks AI workspace.")
token_app = typer.Typer(no_args_is_help=True, help="Personal access tokens.")
sp_app = typer.Typer(no_args_is_help=True, help="Service principals (OAuth machine-to-machine).")
table_app = typer.Typer(no_args_is_help=True, help="Read and write Delta tables.")
app.add_typer(token_app, name="token")
app.add_typer(sp_app, name="sp")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks (JSON on stdout).")
app.add_typer(table_app, name="table")
app.add_typer(bench_app, name="bench")
from ._bundle import bundle_app  # noqa: E402 - the sub-apps use the helpers defined below at call time
from ._eval import eval_app, monitor_app  # noqa: E402 - the sub-apps use the helpers defined below at call time

app.add_typer(eval_app, name="eval")
app.add_typer(monitor_app, name="monitor")
app.add_typer(bundle_app, name="bundle")
prices_app = typer.Typer(no_args_is_help=True, help="What model calls cost: dollars per 1M tokens per endpoint.")
app.add_typer(prices_app, name="prices")

Home = Annotated[Path | None, typer.Option("--home", help="Workspace directory [env BRICKYARD_HOME; ./.brickyard]")]
User = Annotated[str | None, typer.Option("--user", help="Act as this principal [env BRICKYARD_USER]")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
T = TypeVar("T")


def _run(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except BrickyardError as exc:
        typer.echo(f"Error: {exc.message}", err=True)
        raise typer.Exit(exc.exit_code) from None


def _workspace(home: Path | None, *, background: bool = False, replica: int = 0, **kw: Any) -> Any:
    """The workspace a command works on. Only ``serve`` does background work (resuming deployments); every
    other command may run beside a server on the same home, through the metastore's transactions and Delta's
    optimistic commits."""
    from ..core.settings import Settings
    from ..workspace import Workspace

    return Workspace(Settings.from_env(home=home, **kw), background=background, replica=replica)


def _listen(host: str, port: int) -> Any:
    import socket

    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        raise InvalidParameterValue(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _principal(ws: Any, user: str | None) -> Any:
    name = user or ws.settings.user
    if not name:
        raise InvalidParameterValue("say who you are: --user NAME (or set BRICKYARD_USER)")
    return ws.principal(name)


@app.command()
def serve(home: Home = None,
          host: Annotated[str | None, typer.Option(help="Bind address [127.0.0.1]")] = None,
          port: Annotated[int | None, typer.Option(help="Port [8080]")] = None,
          metastore_url: Annotated[str | None, typer.Option(help="postgresql://... to share the metastore")] = None,
          log_level: Annotated[str | None, typer.Option(help="debug|info|warning|error")] = None,
          workers: Annotated[int, typer.Option(help="Server processes sharing the port (each keeps its own "
                                                    "search structures; the first does background work)")] = 1,
          join: Annotated[bool, typer.Option("--join", help="Add this server to the one already serving this home "
                                                            "(on another port, e.g. behind a TCP balancer)")] = False,
          socket_fd: Annotated[int | None, typer.Option(hidden=True, help="(--workers) the listening socket")] = None,
          tls: Annotated[bool | None, typer.Option("--tls/--no-tls", help="Serve HTTPS, with Spark Connect (gRPC, for "
                                                   "DatabricksSession) on the same port [BRICKYARD_TLS]")] = None,
          ) -> None:
    """Start the REST server (Databricks-compatible routes) for a workspace."""
    import uvicorn

    from ..api import create_app
    from ..core.homelock import HomeLock
    from ..core.settings import Settings

    settings = _run(lambda: Settings.from_env(home=home, host=host, port=port, metastore_url=metastore_url,
                                              log_level=log_level, tls=None if tls is None else int(tls)))
    if workers < 1 or workers > 64:
        _run(lambda: _fail("--workers must be from 1 to 64"))
    if settings.tls and (workers > 1 or join):
        _run(lambda: _fail("--tls serves one process: it cannot be combined with --workers or --join"))
    if workers > 1:
        from ._workers import serve_workers

        raise typer.Exit(_run(lambda: serve_workers(settings, workers, join=join, metastore_url=metastore_url)))
    lock = _run(lambda: HomeLock(Path(settings.home).resolve()).acquire(join=join, port=settings.port))
    ws = _run(lambda: _workspace(home, background=lock.slot == 0, replica=lock.slot, host=host, port=port,
                                 metastore_url=metastore_url, log_level=log_level, tls=settings.tls))
    s = ws.settings
    if s.host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"Warning: binding {s.host} exposes this workspace to other machines.", err=True)
    host_for_urls = "127.0.0.1" if s.host in ("0.0.0.0", "::") else s.host  # noqa: S104 - naming, not binding
    sockets = None
    scheme = "https" if s.tls else "http"
    if s.tls:  # the front owns the port; uvicorn listens privately behind it
        import socket

        public = _run(lambda: _listen(s.host, s.port))
        private = socket.create_server(("127.0.0.1", 0))
        sockets = [private]
        ws.server_url = f"http://127.0.0.1:{private.getsockname()[1]}"
    elif socket_fd is not None:  # one of several processes on one port: deployed models call back on a port of its own
        import socket

        private = socket.create_server(("127.0.0.1", 0))
        sockets = [socket.socket(fileno=socket_fd), private]
        ws.server_url = f"http://127.0.0.1:{private.getsockname()[1]}"
    else:
        ws.server_url = f"http://{host_for_urls}:{s.port}"  # where deployed models call back
    lock.update(url=f"{scheme}://{host_for_urls}:{s.port}")
    import threading

    threading.Thread(target=_warm_when_up, args=(ws, ws.server_url), daemon=True, name="warm-endpoints").start()
    role = "primary" if lock.slot == 0 else f"joined as process {lock.slot}"
    typer.echo(f"Brickyard workspace {ws.home} on {scheme}://{s.host}:{s.port} (workspace id {ws.workspace_id}, "
               f"{role})", err=True)
    _stop_cleanly_on_sigterm()
    try:
        if s.tls:
            import contextlib

            from ..api._tls import https_scheme, tls_front

            with contextlib.ExitStack() as stack:
                files = _run(lambda: stack.enter_context(tls_front(ws, public, private.getsockname()[1])))
                if files.ca is not None:
                    typer.echo(f"HTTPS and Spark Connect: trust {files.ca} (export REQUESTS_CA_BUNDLE={files.ca} "
                               f"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH={files.ca})", err=True)
                config = uvicorn.Config(https_scheme(create_app(ws)), log_level=s.log_level, access_log=False,
                                        timeout_graceful_shutdown=5)
                uvicorn.Server(config).run(sockets=sockets)
        elif sockets is None:
            uvicorn.run(create_app(ws), host=s.host, port=s.port, log_level=s.log_level, access_log=False,
                        timeout_graceful_shutdown=5)
        else:
            config = uvicorn.Config(create_app(ws), log_level=s.log_level, access_log=False,
                                    timeout_graceful_shutdown=5)
            uvicorn.Server(config).run(sockets=sockets)
    finally:
        ws.close()
        lock.release()


def _stop_cleanly_on_sigterm() -> None:
    """After a graceful shutdown uvicorn raises the signal that caused it again, with the handler it found; with
    the default one a SIGTERM ends the process before ``ws.close()``, leaving apps and job tasks running. This
    handler turns it into ``SystemExit``, so the ``finally`` runs."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        def stop(signum: int, frame: Any) -> None:
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, stop)


def _warm_when_up(ws: Any, url: str) -> None:
    """Once this server answers, start the workers of the endpoints it serves (models may call back at load)."""
    import socket
    import time

    host, _, port = url.removeprefix("http://").rpartition(":")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    ws.serving.warm_all()


def _fail(message: str) -> None:
    raise InvalidParameterValue(message)


@token_app.command("create")
def token_create(user: Annotated[str, typer.Option("--user", help="User name (created if missing)")],
                 home: Home = None,
                 admin: Annotated[bool, typer.Option("--admin", help="Make the user a workspace admin")] = False,
                 lifetime_seconds: Annotated[int | None, typer.Option(help="Expire after this many seconds")] = None,
                 comment: Annotated[str | None, typer.Option(help="What the token is for")] = None) -> None:
    """Create a personal access token and print it (only the token) on stdout."""
    ws = _run(lambda: _workspace(home))
    try:
        token = _run(lambda: ws.create_token(user, admin=admin, lifetime_seconds=lifetime_seconds, comment=comment))
    finally:
        ws.close()
    typer.echo(token)


@token_app.command("list")
def token_list(home: Home = None, user: Annotated[str | None, typer.Option(help="Only this user's")] = None,
               as_json: AsJson = False) -> None:
    """List tokens (never their values)."""
    ws = _run(lambda: _workspace(home))
    try:
        pid = _run(lambda: ws.principal(user).id) if user else None
        rows = ws.identity.list_tokens(pid)
    finally:
        ws.close()
    _print_rows([{k: r[k] for k in ("id", "principal", "comment", "created_at", "expires_at", "revoked_at")}
                 for r in rows], as_json)


@token_app.command("revoke")
def token_revoke(token_id: str, home: Home = None) -> None:
    """Revoke a token by its id (from `brickyard token list`)."""
    ws = _run(lambda: _workspace(home))
    try:
        _run(lambda: ws.identity.revoke_token(token_id))
    finally:
        ws.close()
    typer.echo(f"revoked {token_id}", err=True)


@sp_app.command("create")
def sp_create(name: Annotated[str, typer.Option("--name", help="Display name")], home: Home = None,
              admin: Annotated[bool, typer.Option("--admin")] = False) -> None:
    """Create a service principal and print its client_id and client_secret as JSON."""
    ws = _run(lambda: _workspace(home))
    try:
        sp, secret = _run(lambda: ws.create_service_principal(name, admin=admin))
    finally:
        ws.close()
    typer.echo(json.dumps({"client_id": sp.application_id, "client_secret": secret, "id": sp.id}))


@app.command()
def sql(statement: str, home: Home = None, user: User = None, as_json: AsJson = False,
        catalog: Annotated[str | None, typer.Option(help="Default catalog [main]")] = None,
        schema: Annotated[str | None, typer.Option(help="Default schema [default]")] = None) -> None:
    """Run one SQL statement as a user and print the result (rows answered by AI functions counted on stderr)."""
    import threading

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    ws = _run(lambda: _workspace(home))
    done = [0]
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = ws.sql.execute(_principal(ws, user), statement, catalog=catalog, schema=schema,
                                               progress=lambda n: done.__setitem__(0, done[0] + n))
        except BaseException as exc:  # noqa: BLE001 - raised again in the main thread
            outcome["error"] = exc

    try:
        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        thread.join(timeout=1.0)
        if thread.is_alive():
            with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                          console=_stderr_console(), transient=True) as bar:
                task = bar.add_task("running")
                while thread.is_alive():
                    bar.update(task, description=f"running: {done[0]:,} rows answered by AI functions"
                               if done[0] else "running")
                    thread.join(timeout=0.2)
        if "error" in outcome:
            def again() -> None:
                raise outcome["error"]

            _run(again)
    finally:
        ws.close()
    _print_table(outcome["result"].table, as_json)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@app.command("ingest")
def ingest_cmd(paths: Annotated[list[Path], typer.Argument(help="Files or directories to ingest")],
               table: Annotated[str, typer.Option(help="Target Delta table catalog.schema.table (created if missing)")],
               home: Home = None, user: User = None, as_json: AsJson = False,
               strategy: Annotated[str, typer.Option(help="fixed | recursive | structure | semantic")] = "recursive",
               size: Annotated[int, typer.Option(help="Chunk size (characters, or tokens with --unit tokens)")] = 1000,
               overlap: Annotated[int, typer.Option(help="Overlap between consecutive chunks")] = 100,
               unit: Annotated[str, typer.Option(help="chars | tokens (fixed strategy)")] = "chars",
               embedding_endpoint: Annotated[str | None, typer.Option(
                   help="Embedding serving endpoint for --strategy semantic")] = None,
               include: Annotated[list[str] | None, typer.Option(
                   help="Only files whose path (relative to the folder) matches this glob (repeatable; ** spans "
                        "folders, a glob without / matches file names)")] = None,
               exclude: Annotated[list[str] | None, typer.Option(help="Leave out files matching this glob (repeatable)")]
               = None,
               root: Annotated[Path | None, typer.Option(
                   help="Name sources relative to this folder (default: each folder given, or a file's own folder)")]
               = None,
               delete_missing: Annotated[bool, typer.Option(
                   "--delete-missing", help="Remove the chunks of sources that are no longer among the files")] = False,
               index: Annotated[str | None, typer.Option(
                   help="Then create (or sync) this Delta Sync index on the table and wait until it is ready")] = None,
               vs_endpoint: Annotated[str, typer.Option(help="Vector search endpoint of --index (created if missing)")]
               = "brickyard",
               embedding_model: Annotated[str, typer.Option(help="Embedding serving endpoint of --index")]
               = "databricks-gte-large-en") -> None:
    """Parse documents (PDF, DOCX, PPTX, HTML, Markdown, text), chunk them and bring a table up to date with
    them in one commit: unchanged files are skipped, changed ones replaced. With --index, then index it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..ingest import Options, select_files

    ws = _run(lambda: _workspace(home))
    try:
        p = _run(lambda: _principal(ws, user))
        options = _run(lambda: Options(strategy=strategy, size=size, overlap=overlap, unit=unit).check())
        selection = _run(lambda: select_files(paths, include=include or (), exclude=exclude or (), root=root))
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, transient=as_json, disable=as_json) as bar:
            task = bar.add_task("ingesting", total=len(selection.files))

            def step(source: str, chunks: int) -> None:
                what = "unchanged" if chunks < 0 else f"{chunks} chunks"
                bar.update(task, advance=1, description=f"{source[-40:]} ({what})")

            report = _run(lambda: ws.ingest(p, list(paths), table, options=options,
                                            embedding_endpoint=embedding_endpoint, progress=step,
                                            selection=selection, delete_missing=delete_missing))
        out = report.to_dict()
        if index is not None:
            out["index"] = _run(lambda: _follow_index(ws, p, table, index, vs_endpoint, embedding_model, as_json))
    finally:
        ws.close()
    if as_json:
        typer.echo(json.dumps(out))
        return
    version = f"version {out['table_version']}" if out["table_version"] is not None else "no change"
    typer.echo(f"{out['files']} files ({out['chunks']} chunks) written, {out['unchanged']} unchanged, "
               f"{out['deleted']} removed -> {table} ({version})")
    for reason, info in out["skipped"].items():
        typer.echo(f"  skipped {info['count']} ({reason}), e.g. {', '.join(info['examples'][:3])}", err=True)
    for failure in out["failed"]:
        typer.echo(f"  failed {failure['source']}: {failure['kind']}: {failure['message']}", err=True)
    if "index" in out:
        typer.echo(f"index {index}: {out['index']['indexed_row_count']} rows, ready for queries "
                   f"{out['index']['seconds']:.1f} s after the chunks were written")


def _follow_index(ws: Any, p: Any, table: str, index: str, vs_endpoint: str, embedding_model: str,
                  quiet: bool) -> dict[str, Any]:
    """Create or sync ``index`` on ``table`` and show its progress until it answers queries: in this process,
    or through the server that holds the home (which alone writes its indexes)."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..core.homelock import holder
    from ..vectorsearch import LocalIndexes, Target, follow

    started = time.monotonic()
    server = holder(ws.home)
    remote = None
    token_id = None
    if server and server.get("url"):
        from ._remote import RemoteIndexes

        token, info = ws.identity.create_token(p.id, lifetime_seconds=24 * 3600,
                                               comment="brickyard ingest --index (revoked when it ends)")
        token_id = info["id"]
        remote = RemoteIndexes(server["url"], token)
    indexes = remote or LocalIndexes(ws.vectorsearch, p)
    target = Target(index=index, endpoint=vs_endpoint, embedding_endpoint=embedding_model)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, transient=quiet, disable=quiet) as bar:
            task = bar.add_task(f"indexing {index}", total=None)

            def shown(status: dict[str, Any]) -> None:
                sp = status.get("sync_progress") or {}
                if sp.get("rows_to_index") is not None:
                    bar.update(task, total=sp["rows_to_index"], completed=sp.get("rows_indexed", 0),
                               description=f"indexing {index} ({status.get('detailed_state')})")

            status = follow(indexes, table, target, progress=shown)
            bar.update(task, total=status.get("indexed_row_count") or 1,
                       completed=status.get("indexed_row_count") or 1)
    finally:
        if remote is not None:
            remote.close()
            ws.identity.revoke_token(token_id)
    return {"name": index, "indexed_row_count": status.get("indexed_row_count"),
            "detailed_state": status.get("detailed_state"), "seconds": round(time.monotonic() - started, 3)}


@table_app.command("read")
def table_read(name: str, home: Home = None, user: User = None, as_json: AsJson = False,
               version: Annotated[int | None, typer.Option(help="Time travel to this version")] = None,
               limit: Annotated[int | None, typer.Option(help="At most this many rows")] = None) -> None:
    """Print the rows of a table (optionally as of a version)."""
    ws = _run(lambda: _workspace(home))
    try:
        table = _run(lambda: ws.tables.read(_principal(ws, user), name, version=version, limit=limit))
    finally:
        ws.close()
    _print_table(table, as_json)


@table_app.command("write")
def table_write(name: str, source: Annotated[Path, typer.Argument(help=".json, .jsonl, .csv or .parquet; - = JSON stdin")],
                home: Home = None, user: User = None,
                mode: Annotated[str, typer.Option(help="append | overwrite | merge")] = "append",
                key: Annotated[list[str] | None, typer.Option(help="Merge key column (repeatable)")] = None,
                txn_app_id: Annotated[str | None, typer.Option(help="Idempotency: writer id")] = None,
                txn_version: Annotated[int | None, typer.Option(help="Idempotency: batch number")] = None) -> None:
    """Write rows into a table. With --txn-app-id/--txn-version a retried write is applied once."""
    if (txn_app_id is None) != (txn_version is None):
        typer.echo("Error: give both --txn-app-id and --txn-version, or neither", err=True)
        raise typer.Exit(2)
    data = _run(lambda: _load_rows(source))
    ws = _run(lambda: _workspace(home))
    try:
        txn = (txn_app_id, txn_version) if txn_app_id is not None and txn_version is not None else None
        res = _run(lambda: ws.tables.write(_principal(ws, user), name, data, mode=mode, keys=key, txn=txn))
    finally:
        ws.close()
    typer.echo(json.dumps(res.to_dict()))


@table_app.command("history")
def table_history(name: str, home: Home = None, user: User = None, as_json: AsJson = False) -> None:
    """Print the commit history of a table."""
    ws = _run(lambda: _workspace(home))
    try:
        rows = _run(lambda: ws.tables.history(_principal(ws, user), name))
    finally:
        ws.close()
    _print_rows([{k: r.get(k) for k in ("version", "timestamp", "operation")} for r in rows], as_json)


@table_app.command("changes")
def table_changes(name: str, home: Home = None, user: User = None, as_json: AsJson = False,
                  start: Annotated[int, typer.Option(help="First version")] = 0,
                  end: Annotated[int | None, typer.Option(help="Last version")] = None) -> None:
    """Print the change data feed between two versions."""
    ws = _run(lambda: _workspace(home))
    try:
        table = _run(lambda: ws.tables.changes(_principal(ws, user), name, start=start, end=end))
    finally:
        ws.close()
    _print_table(table, as_json)


@prices_app.command("list")
def prices_list(home: Home = None, as_json: AsJson = False) -> None:
    """The workspace's price table (used by token cost scorers and monitoring)."""
    with _workspace(home) as ws:
        prices = _run(ws.prices.load)
    rows = [{"endpoint": n, "input_per_1m": p.input_per_1m, "output_per_1m": p.output_per_1m}
            for n, p in sorted(prices.items())]
    _print_rows(rows, as_json)


@prices_app.command("set")
def prices_set(endpoint: str, input_per_1m: Annotated[float, typer.Option("--input", help="$ per 1M input tokens")],
               output_per_1m: Annotated[float, typer.Option("--output", help="$ per 1M output tokens")],
               home: Home = None) -> None:
    """Set what an endpoint's tokens cost."""
    with _workspace(home) as ws:
        price = _run(lambda: ws.prices.set(endpoint, input_per_1m, output_per_1m))
    typer.echo(f"{endpoint}: ${price.input_per_1m:g} per 1M input tokens, ${price.output_per_1m:g} per 1M output")


@prices_app.command("delete")
def prices_delete(endpoint: str, home: Home = None) -> None:
    """Remove an endpoint's price."""
    with _workspace(home) as ws:
        if not _run(lambda: ws.prices.delete(endpoint)):
            typer.echo(f"Error: {endpoint} has no price", err=True)
            raise typer.Exit(1)
    typer.echo(f"{endpoint}: price removed")


@bench_app.command("gateway")
def bench_gateway(seconds: Annotated[float, typer.Option(help="Seconds per load phase")] = 5.0,
                  concurrency: Annotated[int, typer.Option(help="Concurrent connections")] = 32,
                  as_json: AsJson = False) -> None:
    """The AI Gateway hop against calling the upstream directly, side by side in one run."""
    from ..bench import run_gateway_bench

    _bench_out(_run(lambda: run_gateway_bench(seconds=seconds, concurrency=concurrency)), as_json)


@bench_app.command("serving")
def bench_serving(rounds: Annotated[int, typer.Option(help="Measured rounds per path")] = 3,
                  max_tokens: Annotated[int, typer.Option(help="Tokens to generate per chat call")] = 64,
                  as_json: AsJson = False) -> None:
    """The local models through an endpoint against calling them in-process, in one run."""
    from ..bench import run_serving_bench

    _bench_out(_run(lambda: run_serving_bench(rounds=rounds, max_tokens=max_tokens)), as_json)


@bench_app.command("model-workers")
def bench_model_workers(seconds: Annotated[float, typer.Option(help="Seconds of 2x overload per pool size")] = 5.0,
                        service_ms: Annotated[float, typer.Option(help="What the model takes per request")] = 50.0,
                        as_json: AsJson = False) -> None:
    """Served model versions: queueing under 2x overload (one and two workers) and the cold start."""
    from ..bench._workers import run_workers_bench

    _bench_out(_run(lambda: run_workers_bench(seconds=seconds, service_ms=service_ms)), as_json)


@bench_app.command("sql-ai")
def bench_sql_ai(rows: Annotated[int, typer.Option(help="Rows ai_query answers")] = 10_000,
                 latency_ms: Annotated[float, typer.Option(help="What the local upstream takes per call")] = 20.0,
                 loop_rows: Annotated[int, typer.Option(help="Rows of the Python loop it is compared with")] = 300,
                 ray: Annotated[bool, typer.Option("--ray", help="Instead: the embedding model over the rows in "
                                                   "this process, then on a loopback Ray cluster with 1 and 2 workers "
                                                   "(needs the 'ray' extra)")] = False,
                 as_json: AsJson = False) -> None:
    """ai_query over a table against a Python loop calling the same endpoint, in one run."""
    from ..bench._sql_ai import run_sql_ai_bench, run_sql_ai_ray_bench

    if ray:
        _bench_out(_run(lambda: run_sql_ai_ray_bench(rows=rows if rows != 10_000 else 4000)), as_json)
        return
    _bench_out(_run(lambda: run_sql_ai_bench(rows=rows, latency_ms=latency_ms, loop_rows=loop_rows)), as_json)


@bench_app.command("ui")
def bench_ui(rows: Annotated[int, typer.Option(help="Rows of the demo table")] = 5000,
             repeat: Annotated[int, typer.Option(help="Requests per page")] = 30,
             as_json: AsJson = False) -> None:
    """The server time of every workspace page on a demo-like workspace, and what the pages cost the API."""
    from ..bench._ui import run_ui_bench

    _bench_out(_run(lambda: run_ui_bench(rows=rows, repeat=repeat)), as_json)


@bench_app.command("tracing")
def bench_tracing(calls: Annotated[int, typer.Option(help="Traced calls per measurement")] = 5000,
                  as_json: AsJson = False) -> None:
    """What a span costs inside a deployed model, and what recording a trace costs the server."""
    from ..bench import run_tracing_bench

    _bench_out(_run(lambda: run_tracing_bench(calls=calls)), as_json)


@bench_app.command("vectorsearch")
def bench_vectorsearch(rows: Annotated[int, typer.Option(help="Vectors in the ANN index")] = 100_000,
                       queries: Annotated[int, typer.Option(help="Queries per measurement")] = 1000,
                       docs: Annotated[int, typer.Option(help="Documents in the BM25 index")] = 100_000,
                       passages: Annotated[int, typer.Option(help="Passages to embed")] = 64,
                       freshness_rows: Annotated[int, typer.Option(help="Rows per freshness commit")] = 1000,
                       part: Annotated[list[str] | None, typer.Option(
                           help="Run only this part (repeatable): ann, bm25, hybrid, embeddings, freshness, rest")]
                       = None,
                       peer_python: Annotated[str | None, typer.Option(
                           help="Python of the peers environment (make bench: .venv-peers/bin/python); "
                                "without it the Chroma peer is skipped")] = None,
                       ef: Annotated[list[int] | None, typer.Option(
                           help="efSearch values of the ANN sweep (repeatable; default 16..192)")] = None,
                       as_json: AsJson = False) -> None:
    """The vector index engine (ANN, BM25), the REST route and the embedding model against their peers, per core."""
    from ..bench import run_vectorsearch_bench
    from ..bench._vectorsearch import PARTS

    _bench_out(_run(lambda: run_vectorsearch_bench(
        rows=rows, queries=queries, docs=docs, passages=passages, freshness_rows=freshness_rows,
        parts=tuple(part) if part else PARTS, peer_python=peer_python, efs=ef)), as_json)


@bench_app.command("retrieval")
def bench_retrieval_quality(data: Annotated[Path, typer.Option(help="A BEIR-layout directory (corpus.jsonl, queries.jsonl, "
                                                            "qrels/)")] = Path("../shared/data/scifact"),
                    split: Annotated[str, typer.Option(help="qrels split")] = "train",
                    limit_docs: Annotated[int | None, typer.Option(help="Keep the relevant docs and fill up to N")]
                    = None,
                    site: Annotated[Path | None, typer.Option(
                        help="Instead: a documentation site folder, ingested, with questions people type")] = None,
                    questions: Annotated[Path | None, typer.Option(
                        help="With --site: the questions file (default bench/questions/python-docs.json)")] = None,
                    as_json: AsJson = False) -> None:
    """Retrieval quality of ANN, FULL_TEXT, HYBRID and HYBRID+rerank: nDCG@10 and recall@10 on SciFact, or
    page-level hit@5 and MRR@10 on a documentation site (--site)."""
    from ..bench._retrieval import DEFAULT_QUESTIONS, run_docs_retrieval_bench, run_retrieval_bench

    if site is not None:
        if not site.is_dir():
            typer.echo(f"Error: {site} is not a folder", err=True)
            raise typer.Exit(2)
        _bench_out(_run(lambda: run_docs_retrieval_bench(site, questions or DEFAULT_QUESTIONS)), as_json)
        return
    if not (data / "corpus.jsonl").exists():
        typer.echo(f"Error: {data}/corpus.jsonl not found; pass --data", err=True)
        raise typer.Exit(2)
    _bench_out(_run(lambda: run_retrieval_bench(data, split=split, limit_docs=limit_docs)), as_json)


@bench_app.command("proxies")
def bench_proxies(data: Annotated[Path, typer.Option(help="The SciFact directory (corpus.jsonl, queries.jsonl, qrels/, "
                                                     "claims_train_labels.jsonl)")] = Path("../shared/data/scifact"),
                  limit: Annotated[int | None, typer.Option(help="Claims per half, for a quick run")] = None,
                  as_json: AsJson = False) -> None:
    """Agreement of the offline judge proxies with human labels: accuracy, Cohen's kappa and yes-rate per label,
    on the calibration and held-out halves."""
    from ..bench._proxies import run_proxy_bench

    if not (data / "claims_train_labels.jsonl").exists():
        typer.echo(f"Error: {data}/claims_train_labels.jsonl not found; pass --data", err=True)
        raise typer.Exit(2)
    _bench_out(_run(lambda: run_proxy_bench(data, limit=limit)), as_json)


@bench_app.command("eval")
def bench_evaluation(rows: Annotated[int, typer.Option(help="Rows per deterministic-scorer measurement")] = 200,
                     seconds: Annotated[float, typer.Option(help="Seconds per proxy and judge-call measurement")] = 2.0,
                     as_json: AsJson = False) -> None:
    """Evaluation speed: deterministic scorer rows/s, offline proxy assessments/s, judge calls/s to a local test
    endpoint, and the harness's own time per row (target under 5 ms)."""
    from ..bench._eval import run_eval_bench

    _bench_out(_run(lambda: run_eval_bench(rows=rows, seconds=seconds)), as_json)


@bench_app.command("ingest")
def bench_ingest(site: Annotated[Path, typer.Option(help="A documentation site folder (default: the Python docs "
                                                        "Debian installs with python3.11-doc)")]
                 = Path("/usr/share/doc/python3.11/html"),
                 strategy: Annotated[str, typer.Option(help="Chunking strategy")] = "structure",
                 size: Annotated[int, typer.Option(help="Chunk size")] = 1000,
                 overlap: Annotated[int, typer.Option(help="Chunk overlap")] = 100,
                 as_json: AsJson = False) -> None:
    """Ingest a real site: files/s, chunks/s, an unchanged re-run, and the share of chunks that are furniture."""
    from ..bench._ingest import run_ingest_bench

    if not site.is_dir():
        typer.echo(f"Error: {site} is not a folder; pass --site (or apt-get install python3.11-doc)", err=True)
        raise typer.Exit(2)
    _bench_out(_run(lambda: run_ingest_bench(site, strategy=strategy, size=size, overlap=overlap)), as_json)


def _bench_out(result: Any, as_json: bool) -> None:
    """Benchmarks always print JSON: one line with --json (for scripts), indented without."""
    typer.echo(json.dumps(result, indent=None if as_json else 2))


def _load_rows(source: Path) -> Any:
    import pyarrow as pa

    if str(source) == "-":
        rows = json.load(sys.stdin)
        return rows if isinstance(rows, list) else [rows]
    if not source.is_file():
        raise InvalidParameterValue(f"{source} is not a file")
    suffix = source.suffix.lower()
    try:
        if suffix == ".json":
            rows = json.loads(source.read_text())
            return rows if isinstance(rows, list) else [rows]
        if suffix in (".jsonl", ".ndjson"):
            return [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
        if suffix == ".csv":
            import pyarrow.csv as pcsv

            return pcsv.read_csv(source)
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(source)
    except (ValueError, pa.ArrowInvalid) as exc:
        raise InvalidParameterValue(f"cannot read {source}: {exc}") from exc
    raise InvalidParameterValue("the source must end in .json, .jsonl, .csv or .parquet")


def _print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for r in rows:
            typer.echo(json.dumps(r, default=str))
        return
    if not rows:
        typer.echo("(no rows)")
        return
    cols = list(rows[0])
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in cols] for r in rows]
    widths = [min(60, max(len(c), *(len(row[i]) for row in cells))) for i, c in enumerate(cols)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in cells:
        typer.echo("  ".join(v[:w].ljust(w) for v, w in zip(row, widths, strict=True)))


def _print_table(table: Any, as_json: bool) -> None:
    _print_rows(table.to_pylist(), as_json)


def main() -> None:
    from ..core.settings import Settings

    Settings.quiet_third_party()  # this process and every one it starts
    app()
