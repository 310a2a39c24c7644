"""`clarion serve [DIR|TABLE]`: run the sidecar."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from clarion.cli import reporters
from clarion.cli.options import EnvironmentProblem, build_or_exit, source_line_of

if TYPE_CHECKING:
    from clarion.runtime import TableIndex

DEFAULT_PORT = 8425


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_store(source: Path) -> str:
    """A SQLite file beside the config: DIR/.clarion/store.db (hidden, so never read as config),
    or TABLE.db beside a compiled table."""
    if source.is_dir():
        return f"sqlite:///{(source / '.clarion' / 'store.db').resolve()}"
    return f"sqlite:///{source.resolve().with_suffix('.db')}"


@click.command("serve")
@click.argument("source", required=False, default=".", type=click.Path(path_type=Path))
@click.option(
    "--store",
    "store_url",
    envvar="CLARION_STORE",
    help="sqlite:///path (default: beside the config), or postgresql://user@host/db for "
    "several sidecars sharing one store.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workers",
    default=64,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Sends in flight.",
)
@click.option("--dry-run", is_flag=True, help="Record deliveries as sent without sending them.")
@click.option(
    "--max-attempts",
    default=6,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Tries before a delivery is dead.",
)
@click.option(
    "--backoff",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.0, 3600.0),
    help="Base of the exponential retry delay, in seconds.",
)
@click.option(
    "--lease",
    default=120.0,
    show_default=True,
    type=click.FloatRange(1.0, 86400.0),
    help="Seconds a claimed send may take before another worker may retry it.",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    default=None,
    help="Default: json unless on a terminal.",
)
@click.option("--no-watch", is_flag=True, help="Reload on SIGHUP only, not when files change.")
@click.option(
    "--shutdown-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(1.0, 3600.0),
    help="Seconds from SIGTERM to exit: sends in flight get this long to finish.",
)
def serve_command(
    source: Path,
    store_url: str | None,
    host: str,
    port: int,
    workers: int,
    dry_run: bool,
    max_attempts: int,
    backoff: float,
    lease: float,
    log_format: str | None,
    no_watch: bool,
    shutdown_timeout: float,
) -> None:
    """Serve a config directory (compiled at start) or a compiled table file."""
    import logging

    from clarion.runtime import Policy, Runtime, StoreError, TableError, logs
    from clarion.runtime.secrets import MissingSecret
    from clarion.runtime.service import ConfigWatcher
    from clarion.runtime.store import open_store

    logs.configure(log_format)
    log = logging.getLogger("clarion.serve")
    token = os.environ.get("CLARION_TOKEN") or None
    if not _is_loopback(host) and token is None:
        raise EnvironmentProblem(
            f"refusing to listen on {host} without CLARION_TOKEN: set it, and clients send "
            "'Authorization: Bearer <token>'"
        )
    if not source.exists():
        raise EnvironmentProblem(f"{source}: no such file or directory")
    table_source = _table_source(source)
    try:
        table = table_source()
    except TableError as exc:
        raise click.exceptions.Exit(_print_refusal(str(exc))) from None
    try:
        store = open_store(store_url or default_store(source))
    except StoreError as exc:
        raise EnvironmentProblem(str(exc)) from None
    except OSError as exc:
        raise EnvironmentProblem(f"cannot create the store: {exc.strerror or exc}") from None
    try:
        runtime = Runtime(
            table,
            store,
            Policy(
                workers=workers,
                dry_run=dry_run,
                max_attempts=max_attempts,
                backoff_base=backoff,
                lease_seconds=lease,
            ),
            source=table_source,
        )
    except MissingSecret as exc:
        store.close()
        raise EnvironmentProblem(str(exc)) from None
    sock = _bind(host, port)
    import uvicorn

    from clarion.runtime.api import create_app
    from clarion.runtime.server import DrainingServer

    app = create_app(runtime, token)
    # Of the bound, most goes to sends in flight; the rest to answering requests already read.
    grace = 1 if shutdown_timeout < 8 else 2
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=grace
    )
    server = DrainingServer(config, runtime, shutdown_timeout - grace)
    signal.signal(
        signal.SIGHUP, lambda *_: threading.Thread(target=runtime.reload, daemon=True).start()
    )
    watcher = None
    if not no_watch:
        watcher = ConfigWatcher(runtime, lambda: _watched(source))
        watcher.start()
    runtime.start()
    bound = sock.getsockname()
    log.info(
        "serving",
        extra={
            "url": f"http://{bound[0]}:{bound[1]}",
            "digest": table.digest,
            "store": store.url,
            "dry_run": dry_run,
        },
    )
    try:
        server.run(sockets=[sock])
    finally:
        if watcher is not None:
            watcher.stop()
        # Stopped for another reason than a drain (a second signal): drain what is left, briefly.
        clean = server.clean if server.drained.is_set() else runtime.drain(grace)
        runtime.store.close()
        log.info("stopped")
    if not clean:
        # A send stuck past the bound holds a pool thread that the interpreter would wait for
        # at exit; its delivery stays `sending` and the next start queues it again.
        logging.shutdown()
        os._exit(0)


def _print_refusal(message: str) -> int:
    click.echo(f"clarion serve: {message}", err=True)
    return 1


def _table_source(source: Path) -> Callable[[], TableIndex]:
    from clarion.runtime import TableError, TableIndex

    if source.is_file():
        return lambda: TableIndex.from_file(source)

    first = True

    def from_directory() -> TableIndex:
        nonlocal first
        result = build_or_exit(source)
        if result.table is None or result.data is None:
            text = reporters.text(result.diagnostics, source_line_of(result), color=False)
            summary = f"{source}: {reporters.summary(result.diagnostics)}"
            if first:  # at start a person is reading: diagnostics as a compiler prints them
                click.echo(text, err=True)
                raise TableError(summary)
            raise TableError(f"{summary}\n{text}")  # on reload: into the (JSON) log line
        first = False
        return TableIndex.from_table(result.table, result.data)

    return from_directory


def _watched(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    from clarion.load import config_files

    files = list(config_files(source))
    files += [p for p in source.rglob("*.j2") if ".clarion" not in p.parts]
    return files


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise EnvironmentProblem(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
