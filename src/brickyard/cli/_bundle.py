"""``brickyard bundle init | validate | deploy | run | destroy | summary``: Databricks Asset Bundles against a
workspace's REST API (``DATABRICKS_HOST`` and ``DATABRICKS_TOKEN``, as the Databricks CLI reads them)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

bundle_app = typer.Typer(no_args_is_help=True, help="Databricks Asset Bundles: databricks.yml deployed per target.")

Target = Annotated[str | None, typer.Option("--target", "-t", help="The target (default: the bundle's default).")]
Vars = Annotated[list[str] | None, typer.Option("--var", help="A variable's value: name=value (repeatable).")]
Host = Annotated[str | None, typer.Option("--host", help="The workspace URL (default: DATABRICKS_HOST).")]
Folder = Annotated[Path, typer.Option("--bundle-dir", help="A folder of the bundle (default: here).")]
Output = Annotated[str, typer.Option("--output", "-o", help="text or json.")]


def _run(fn: Any) -> Any:
    from . import _run as run

    return run(fn)


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    from ..bundles import BundleError

    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise BundleError(f"{what} must look like name=value, got {item!r}")
        out[name] = value
    return out


@contextmanager
def _bundle(folder: Path, target: str | None, variables: list[str] | None, host: str | None
            ) -> Iterator[tuple[Any, Any]]:
    """(the loaded bundle, a deployer) for a command."""
    from ..bundles import Client, Deployer, find_root, load_bundle
    from ..core.settings import Settings

    env = Settings.client_environ()
    client = _run(lambda: Client(host or env.get("DATABRICKS_HOST", ""), env.get("DATABRICKS_TOKEN", "")))
    try:
        root = _run(lambda: find_root(folder))
        user = _run(client.me)
        bundle = _run(lambda: load_bundle(root, target=target, variables=_pairs(variables, "--var"), environ=env,
                                          user=user, lookup=client.lookup))
        yield bundle, Deployer(bundle, client, out=typer.echo)
    finally:
        client.close()


@bundle_app.command("init")
def init_cmd(folder: Annotated[Path, typer.Argument(help="Where to create the bundle.")] = Path("."),
             name: Annotated[str | None, typer.Option(help="The bundle's name (default: the folder's).")] = None
             ) -> None:
    """Create a bundle to start from: a schema and a job running a notebook, with dev and prod targets."""
    from ..bundles import init

    for path in _run(lambda: init(folder, name)):
        typer.echo(f"created {path}")
    typer.echo("next: brickyard bundle validate, then brickyard bundle deploy (DATABRICKS_HOST, DATABRICKS_TOKEN)")


@bundle_app.command("validate")
def validate_cmd(target: Target = None, var: Vars = None, host: Host = None, bundle_dir: Folder = Path("."),
                 output: Output = "text") -> None:
    """Read the bundle for a target and report the first problem with its file, line and key."""
    with _bundle(bundle_dir, target, var, host) as (bundle, _deployer):
        if output == "json":
            typer.echo(json.dumps({"bundle": {"name": bundle.name, "target": bundle.target, "mode": bundle.mode},
                                   "workspace": {"root_path": bundle.root_path, "file_path": bundle.file_path,
                                                 "state_path": bundle.state_path},
                                   "variables": bundle.variables, "resources": bundle.resources}, indent=2,
                                  default=str))
            return
        count = sum(len(items) for items in bundle.resources.values())
        typer.echo(f"Name: {bundle.name}\nTarget: {bundle.target}\nWorkspace: {bundle.root_path}\n"
                   f"Resources: {count}\n\nValidation OK!")


@bundle_app.command("deploy")
def deploy_cmd(target: Target = None, var: Vars = None, host: Host = None, bundle_dir: Folder = Path("."),
               force_lock: Annotated[bool, typer.Option("--force-lock", help="Take the target's lock even if held."
                                                        )] = False) -> None:
    """Sync the files and create, update or delete resources so that the target matches the bundle."""
    with _bundle(bundle_dir, target, var, host) as (_bundle_, deployer):
        _run(lambda: deployer.deploy(force_lock=force_lock))


@bundle_app.command("run")
def run_cmd(key: Annotated[str, typer.Argument(help="The key of a job or app of the bundle.")],
            target: Target = None, var: Vars = None, host: Host = None, bundle_dir: Folder = Path("."),
            param: Annotated[list[str] | None, typer.Option("--param", help="A job parameter: name=value.")] = None,
            no_wait: Annotated[bool, typer.Option("--no-wait", help="Start it and return.")] = False) -> None:
    """Run a deployed job (and wait for it), or deploy and start an app's source."""
    with _bundle(bundle_dir, target, var, host) as (_bundle_, deployer):
        code = _run(lambda: deployer.run(key, params=_run(lambda: _pairs(param, "--param")), wait=not no_wait))
    raise typer.Exit(code)


@bundle_app.command("destroy")
def destroy_cmd(target: Target = None, var: Vars = None, host: Host = None, bundle_dir: Folder = Path("."),
                auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Do not ask.")] = False) -> None:
    """Delete every resource this target's deployments created, and its folder in the workspace."""
    with _bundle(bundle_dir, target, var, host) as (bundle, deployer):
        if not auto_approve and not typer.confirm(f"Delete everything bundle {bundle.name} deployed to target "
                                                  f"{bundle.target} ({bundle.root_path})?"):
            raise typer.Exit(1)
        _run(deployer.destroy)


@bundle_app.command("summary")
def summary_cmd(target: Target = None, var: Vars = None, host: Host = None, bundle_dir: Folder = Path("."),
                output: Output = "text") -> None:
    """What the target has: each resource with its id and URL, or that it is not deployed."""
    with _bundle(bundle_dir, target, var, host) as (_bundle_, deployer):
        summary = _run(deployer.summary)
    if output == "json":
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(f"Name: {summary['name']}\nTarget: {summary['target']}\nWorkspace:\n  Host: {summary['host']}\n"
               f"  Path: {summary['root_path']}\nResources:")
    for kind, items in summary["resources"].items():
        typer.echo(f"  {kind}:")
        for key, item in items.items():
            where = item.get("url") if item.get("deployed", True) else "(not deployed)"
            typer.echo(f"    {key}:\n      Name: {item['name']}\n      URL:  {where}")
