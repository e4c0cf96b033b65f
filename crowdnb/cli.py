"""The ``crowdnb`` command: a thin skin over the Python API."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from typing import Any

import click
import pandas as pd

from . import __version__
from .architects.ec2_cli import ec2
from .errors import ConfigError, CrowdError, NotFound
from .forms.cli import form
from .options import KINDS, describe, names
from .project import Project, missing_project, open_project, project_exists, restore
from .serve import CONNECTIONS, NO_PROJECT, ClientLimits
from .workers import describe as describe_qualification
from .workers import grant, revoke


class _Group(click.Group):
    """Print a crowdnb error, and a mistake in the command's usage, as one line with no traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except CrowdError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:  # click would print the usage, a hint and the error on three lines
            where = exc.ctx.command_path if exc.ctx is not None else "crowdnb"
            click.echo(f"error: {exc.format_message()} (`{where} --help` shows how)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _existing(home: str | None) -> Project:
    """The project a command reads: a typo in ``--home`` is an error, never a new empty project."""
    if not project_exists(home):
        raise NotFound(missing_project(home, NO_PROJECT))
    return open_project(home)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="crowdnb")
def cli() -> None:
    """Run human data-collection studies: tasks, runs, workers, review, export."""


@cli.command()
@click.option(
    "--home", type=click.Path(file_okay=False), help="Project folder (default $CROWDNB_HOME or ./crowdnb_data)."
)
@click.option("--workers", default=4, show_default=True, help="Simulated workers.")
@click.option("--replicas", default=3, show_default=True, help="Workers per sentence (units_per_assignment).")
@click.option("--keep-open", is_flag=True, help="Wait for Ctrl-C before the bots start, so you can work too.")
def demo(home: str | None, workers: int, replicas: int, keep_open: bool) -> None:
    """Run a demo study end to end: local router, mock crowd, SQLite."""
    from .demo import run_demo

    # SIGTERM (a process manager, `kill`) ends the demo as Ctrl-C would: its run is stopped, not left running
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    run_demo(home, workers=workers, replicas=replicas, keep_open=keep_open, say=click.echo)


@cli.command()
@click.argument("target")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--home", type=click.Path(file_okay=False), help="Project folder.")
def export(target: str, path: str, home: str | None) -> None:
    """Export TARGET (a task name, or a run id) to PATH (.csv, .parquet or .jsonl)."""
    project, what = _existing(home), int(target) if target.isdigit() else target
    written = project.export(what, path)
    click.echo(f"{len(project.frame(what))} rows written to {written}")


@cli.command()
@click.option("--home", type=click.Path(file_okay=False), help="Project folder.")
def runs(home: str | None) -> None:
    """List the runs of a project: task, state, provider, units, submitted, accepted, created."""
    table = _existing(home).run_table()
    if table.empty:
        click.echo("no runs yet; launch a task (task.launch() in Python, %crowd launch in a notebook)")
        return
    table = table.rename(columns={"run_id": "run", "created_at": "created"})
    _print(table[["run", "task", "state", "provider", "units", "submitted", "accepted", "created"]])


@cli.command()
@click.argument("worker", required=False)
@click.option("--provider", default="mock", show_default=True, help="The provider the worker comes from.")
@click.option("--home", type=click.Path(file_okay=False), help="Project folder.")
def workers(worker: str | None, provider: str, home: str | None) -> None:
    """List the workers of a project (units, qualifications, blocks), or WORKER's record and history."""
    project = _existing(home)
    table = project.worker_table()
    if worker is None:
        if table.empty:
            click.echo("no workers yet")
        else:
            _print(table)
        return
    if not ((table["worker"] == worker) & (table["provider"] == provider)).any():
        raise NotFound(f"no worker {worker!r} of provider {provider!r} in {project.root}; `crowdnb workers` lists them")
    record = project.worker(worker, provider)
    click.echo(f"worker {worker} ({provider}){': BLOCKED' if record.blocked else ''}")
    click.echo("units: " + (", ".join(f"{k} {v}" for k, v in sorted(record.units.items())) or "none"))
    held = record.qualifications
    click.echo("qualifications: " + (", ".join(f"{k}={v}" for k, v in held.items()) or "none"))
    history = record.history
    if not history.empty:
        click.echo("latest actions:")
        _print(history[["at", "actor", "action", "task", "amount", "note"]].head(20), indent="  ")


@cli.group()
def qualifications() -> None:
    """Qualifications: list them, grant or revoke one, describe who holds it."""


@qualifications.command("list")
@click.option("--home", type=click.Path(file_okay=False), help="Project folder.")
def qualifications_list(home: str | None) -> None:
    """Every qualification with its description and how many workers hold it."""
    table = _existing(home).qualification_table()
    if table.empty:
        click.echo("no qualifications yet; grant one: crowdnb qualifications grant WORKER NAME")
        return
    _print(table)


@qualifications.command("grant")
@click.argument("worker")
@click.argument("name")
@click.option("--value", default=1, show_default=True, help="The whole number the worker holds.")
@click.option("--provider", default="mock", show_default=True, help="The provider the worker comes from.")
@click.option("--home", type=click.Path(file_okay=False), help="Project folder.")
def qualifications_grant(worker: str, name: str, value: int, provider: str, home: str | None) -> None:
    """Give WORKER the qualification NAME (granting again changes the value); sent to the provider too."""
    grant(worker, name, value, provider=provider, project=_existing(home))
    click.echo(f"{worker} ({provider}) holds {name}={value}")


@qualifications.command("revoke")
@click.argument("worker")
@click.argument("name")
@click.option("--provider", default="mock", show_default=True, help="The provider the worker comes from.")
@click.option("--home", type=click.Path(file_okay=False), help="Project folder.")
def qualifications_revoke(worker: str, name: str, provider: str, home: str | None) -> None:
    """Take the qualification NAME away from WORKER (on the provider too)."""
    done = revoke(worker, name, provider=provider, project=_existing(home))
    click.echo(f"{name} revoked from {worker} ({provider})" if done else f"{worker} ({provider}) did not hold {name}")


@qualifications.command("describe")
@click.argument("name")
@click.option("--home", type=click.Path(file_okay=False), help="Project folder.")
def qualifications_describe(name: str, home: str | None) -> None:
    """The qualification NAME: its description and every worker holding it, with their value."""
    table = describe_qualification(name, project=_existing(home))
    description = table["description"].iloc[0]
    click.echo(f"{name}: {description or '(no description)'}")
    holders = table.dropna(subset=["worker"])
    if holders.empty:
        click.echo("nobody holds it")
    else:
        _print(holders[["provider", "worker", "value", "updated_at"]])


@cli.command(name="describe")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("name", required=False)
def describe_command(kind: str, name: str | None) -> None:
    """Every option of a provider, architect, template or form (a config's path): type, default, meaning."""
    if name is None:
        if kind == "form":
            raise ConfigError("give a form config: crowdnb describe form PATH (a folder or its unit_config.json)")
        click.echo(f"{kind}s: {', '.join(names(kind))}")
        click.echo(f"describe one: crowdnb describe {kind} NAME")
        return
    table = describe(kind, name)
    if table.empty:
        click.echo(f"{kind} {name} takes no options")
    else:
        _print(table)


def _print(table: pd.DataFrame, indent: str = "") -> None:
    """A table for a terminal: a header row, then one left-aligned row per record."""
    text = table.astype(object).where(table.notna(), "").astype(str)
    rows: list[list[str]] = [[str(c) for c in text.columns], *text.values.tolist()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(text.columns))]
    for row in rows:
        cells = [*(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)), row[-1]]
        click.echo(indent + "  ".join(cells).rstrip())


@cli.command()
@click.option("--home", type=click.Path(file_okay=False), help="Project folder.")
@click.option("--run", "run_id", type=int, help="Only this run's lines.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing lines as they are written (Ctrl-C stops).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON lines as stored.")
def logs(home: str | None, run_id: int | None, follow: bool, as_json: bool) -> None:
    """Print a project's log (logs/crowdnb.log and its rotated files), oldest first."""
    import json

    project = _existing(home)
    if run_id is not None and run_id not in project.runs:
        raise NotFound(f"no run {run_id} in {project.root}; `crowdnb runs --home {project.root}` lists them")
    lines = project.logs(run=run_id, follow=follow)
    try:
        for line in lines:
            click.echo(json.dumps(line, ensure_ascii=False) if as_json else _shown(line))
    except KeyboardInterrupt:
        pass
    finally:
        lines.close()


def _shown(line: dict[str, object]) -> str:
    """A log line for people: time, level, where (run, agent, request), logger, message, traceback."""
    where = " ".join(f"{k}={line[k]}" for k in ("run", "agent", "request") if k in line)
    text = f"{line.get('at', '')} {line.get('level', ''):<7} {where + ' ' if where else ''}{line.get('logger', '')}: {line.get('message', '')}"
    error = line.get("error")
    return text + ("\n    " + str(error).replace("\n", "\n    ") if error else "")


@cli.command()
@click.option("--home", type=click.Path(file_okay=False), help="Project folder.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, help="Port (0 picks a free one).")
@click.option("--token", help="Access token (default: a new random one, printed in the link).")
def review(home: str | None, host: str, port: int, token: str | None) -> None:
    """Serve the review web app: tasks, units by worker, decisions, qualifications, stats, export."""
    import secrets

    from .review.app import review_server

    project = _existing(home)
    token = token or secrets.token_urlsafe(32)
    server = review_server(project, token, host, port)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Review app for {project.root}")
    click.echo(f"Open http://{shown}:{server.port}/?token={token}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo("Note: plain HTTP; put it behind HTTPS before sharing the link beyond this machine.")
    click.echo("Press Ctrl-C to stop.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@cli.command()
@click.argument("project", type=click.Path(file_okay=False), required=False)
@click.option("--run", "run_id", type=int, help="Run id (default: the latest run with work left).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, help="Port (0 picks a free one).")
@click.option("--public-url", help="The address workers open, when a proxy or load balancer is in front.")
@click.option(
    "--connections",
    default=CONNECTIONS,
    show_default=True,
    help="Open connections at most (a worker's page holds two).",
)
@click.option(
    "--header-timeout",
    default=ClientLimits.header_seconds,
    show_default=True,
    help="Seconds a client has to send a request's headers (an idle keep-alive connection is closed then).",
)
@click.option(
    "--read-timeout", default=ClientLimits.read_seconds, show_default=True, help="Seconds each read of a body may wait."
)
@click.option(
    "--per-address",
    default=ClientLimits.per_address,
    show_default=True,
    help="Connections one client address may hold (0: no cap).",
)
@click.option(
    "--proxies",
    help="Comma-separated networks not capped, where a proxy or load balancer connects from "
    "(default: loopback and private networks; 'none' caps every address).",
)
def serve(
    project: str | None,
    run_id: int | None,
    host: str,
    port: int,
    public_url: str | None,
    connections: int,
    header_timeout: float,
    read_timeout: float,
    per_address: int,
    proxies: str | None,
) -> None:
    """Serve a run's router outside the notebook (gunicorn + gevent, one worker) until stopped."""
    from .serve import serve as run_server

    networks = (
        ClientLimits.proxies
        if proxies is None
        else tuple(p.strip() for p in proxies.split(",") if p.strip() and p.strip() != "none")
    )
    limits = ClientLimits(header_timeout, read_timeout, per_address, networks)
    run_server(project, run_id, host=host, port=port, public_url=public_url, connections=connections,
               say=click.echo, limits=limits)  # fmt: skip


@cli.command()
@click.argument("platform", type=click.Choice(["mturk", "prolific"]))
@click.option("--access-key-id", help="MTurk: the AWS access key id.")
@click.option("--secret-access-key", help="MTurk: the AWS secret access key (prompted for when omitted).")
@click.option("--api-token", help="Prolific: the API token (prompted for when omitted).")
def register(platform: str, access_key_id: str | None, secret_access_key: str | None, api_token: str | None) -> None:
    """Store a platform's keys in ~/.config/crowdnb (owner-only), outside every project folder."""
    from .credentials import register as store_keys

    if platform == "mturk":
        access_key_id = access_key_id or click.prompt("AWS access key id")
        secret_access_key = secret_access_key or click.prompt("AWS secret access key", hide_input=True)
        path = store_keys("mturk", aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key)
    else:
        api_token = api_token or click.prompt("Prolific API token", hide_input=True)
        path = store_keys("prolific", api_token=api_token)
    click.echo(f"{platform} keys saved to {path} (readable by you only)")


@cli.group()
def mturk() -> None:
    """Amazon MTurk: tidy up what runs left on the platform."""


@mturk.command("cleanup")
@click.option("--sandbox", is_flag=True, help="The MTurk sandbox instead of live MTurk.")
@click.option("--home", type=click.Path(file_okay=False), help="Project folder.")
@click.option("--run", "run_ids", type=int, multiple=True, help="Also a run still marked running (its process died).")
def mturk_cleanup(sandbox: bool, home: str | None, run_ids: tuple[int, ...]) -> None:
    """Dispose of HITs stopped or crashed runs left, and send what MTurk never confirmed (decisions, bonuses …)."""
    from .providers.mturk import cleanup

    done = cleanup(_existing(home), sandbox=sandbox, runs=run_ids)
    click.echo(
        f"{done.disposed} HITs disposed, {done.pending} kept (work awaiting review, or a worker still on them), "
        f"{done.found} found only by annotation; {done.settled} unsent calls sent (decisions, bonuses, qualifications, blocks)"
    )
    if done.running:
        ids = ", ".join(map(str, done.running))
        click.echo(f"left alone: run(s) {ids} still marked running; if their process died, pass --run ID")


@cli.group()
def db() -> None:
    """A project's data in one archive: export|import (merge another project's runs), backup|restore."""


@db.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--home", type=click.Path(file_okay=False), help="Project folder.")
@click.option("--task", help="Only the runs of this task.")
@click.option("--run", "run_id", type=int, help="Only this run.")
@click.option("--since", help="Only runs started on or after this date (2026-12-01, or 2026-12-01T09:30).")
def db_export(path: str, home: str | None, task: str | None, run_id: int | None, since: str | None) -> None:
    """Write runs (default: all) with their answers, workers, audit rows and uploads to PATH (.tar.gz)."""
    written = _existing(home).export_db(path, task=task, run=run_id, since=since)
    click.echo(f"archive written to {written} ({written.stat().st_size} bytes; manifest.json inside lists it)")


@db.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--home", type=click.Path(file_okay=False), help="Project folder.")
def db_import(path: str, home: str | None) -> None:
    """Merge the archive PATH (from `crowdnb db export`, another machine's say) into this project."""
    new = not project_exists(home)  # merging into a new folder makes a project there: say so
    project = open_project(home, create=True)
    if new:
        click.echo(f"new project at {project.root}")
    done = project.import_db(path)
    for conflict in done.conflicts:
        click.echo(f"conflict: {conflict}")
    if not done.changed:
        click.echo("nothing new: every row and file of the archive is here already")
        return
    rows = ", ".join(f"{n} {table}" for table, n in sorted(done.rows.items()))
    click.echo(f"merged {rows or 'no rows'}; {done.files} uploaded files")


@db.command("backup")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--home", type=click.Path(file_okay=False), help="Project folder.")
def db_backup(path: str, home: str | None) -> None:
    """Copy the whole project (database and uploads) to the archive PATH, while runs keep running."""
    project = _existing(home)
    written = project.backup(path)
    click.echo(f"backup of {project.root} written to {written}")


@db.command("restore")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--home", type=click.Path(file_okay=False), help="Project folder to replace.")
@click.option("--force", is_flag=True, help="Overwrite the project even if it has runs marked running.")
def db_restore(path: str, home: str | None, force: bool) -> None:
    """Replace the project by the backup PATH (refused while it has live runs, unless --force)."""
    project = restore(path, into=home, force=force)
    click.echo(f"restored {project.root} from {path}: {len(project.runs)} run(s)")


cli.add_command(form)  # crowdnb form verify|extrapolate|permutate (form_cli.py)
cli.add_command(ec2)  # crowdnb ec2 setup|list|teardown|cleanup (architects/ec2_cli.py)


def main() -> None:
    """Entry point of the console script."""
    cli()
