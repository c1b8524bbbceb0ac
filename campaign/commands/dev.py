"""`campaign dev`: the whole application on one laptop (`load-demo` is in demo.py)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask_babel import gettext as _

from campaign.commands import CommandError
from campaign.commands.demo import DEMO_PASSWORD_ENV

DEFAULT_PORT = 5000
WORKER_STOP_SECONDS = 15.0
# What local use needs and production must not have; anything set explicitly wins.
DEV_ENVIRONMENT = {
    "CAMPAIGN_DEBUG": "true",
    # The dev server speaks plain HTTP: a Secure cookie would never come back.
    "CAMPAIGN_SESSION_COOKIE_SECURE": "false",
    # The demo's letterhead: a fictional organisation, never a real one's name.
    "CAMPAIGN_ORGANISATION_NAME": "Demo Association for Human Rights (fictional)",
}


@click.command("dev")
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="Port on 127.0.0.1.")
@click.option(
    "--admin-password",
    envvar=DEMO_PASSWORD_ENV,
    default=None,
    help="Password for the first admin if it is created (default: random).",
)
def dev_command(port: int, admin_password: str | None) -> None:
    """Run everything locally: migrations, demo data, Redis, mail sink, worker and web app."""
    for key, value in DEV_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    sys.exit(DevRunner(port, admin_password).run())


def _parent_death_signal() -> None:
    # Linux only: if the runner itself is killed (-9), the kernel stops the worker too.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class DevRunner:
    """Starts the local services in order and stops what it started, in reverse."""

    def __init__(self, port: int, admin_password: str | None) -> None:
        self.port = port
        self.admin_password = admin_password
        self.stopping = threading.Event()
        self.exit_code = 0
        self._cleanup = contextlib.ExitStack()
        self._watched: list[tuple[str, subprocess.Popen[bytes]]] = []
        # Said after everything stopped, the app context with the language gone: _start
        # puts it in the terminal's language while it can.
        self._stopped_note = "stopped: web app, worker, mail sink and Redis are down."

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.stopping.is_set():
            return
        note = _("%(signal)s received: stopping…", signal=signal.Signals(signum).name)
        click.echo(f"\n{note}", err=True)
        self.stopping.set()

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            with self._cleanup:
                self._start()
                while not self.stopping.wait(0.5):
                    self._check_children()
        except click.ClickException as error:
            error.show()
            return 1
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        click.echo(self._stopped_note, err=True)
        return self.exit_code

    def _check_children(self) -> None:
        for name, process in self._watched:
            if process.poll() is not None:
                click.echo(
                    _(
                        "error: the %(name)s exited unexpectedly (code %(code)s); "
                        "stopping everything.",
                        name=name,
                        code=process.returncode,
                    ),
                    err=True,
                )
                self.exit_code = 1
                self.stopping.set()
                return

    def _start(self) -> None:
        from werkzeug.serving import make_server

        from campaign import create_app
        from campaign.config import ConfigError
        from campaign.i18n import terminal_language, use_reader_language

        # Unsubscribe links in letters sent from this machine point at this web app; the
        # worker inherits the variable.
        os.environ.setdefault("CAMPAIGN_PUBLIC_URL", f"http://127.0.0.1:{self.port}")
        try:
            app = create_app()
        except ConfigError as error:
            raise click.ClickException(str(error)) from None
        config = app.config["CAMPAIGN_CONFIG"]
        # What this runner prints is in the terminal's language (decision 0031): an app
        # context for the runner's life holds it; it is popped last, after the services.
        self._cleanup.enter_context(app.app_context())
        use_reader_language(terminal_language())
        self._stopped_note = _("stopped: web app, worker, mail sink and Redis are down.")

        # Claim the port first: if it is taken, nothing else has been started yet.
        try:
            server = make_server("127.0.0.1", self.port, app, threaded=True)
        except (OSError, SystemExit) as error:
            raise CommandError(
                _(
                    "port %(port)s on 127.0.0.1 is in use or not allowed (%(error)s); "
                    "try --port 5001",
                    port=self.port,
                    error=error,
                )
            ) from None
        self._cleanup.callback(server.server_close)

        login = self._prepare_database(app)
        if self.stopping.is_set():
            return
        self._start_redis(app)
        # The sink before the worker, so that it stops after it (the stack unwinds in
        # reverse): a worker finishing its letter must not find the sink gone, count the
        # refused connections as failures and pause the campaign.
        mailbox_note = self._start_mail_sink(config)
        self._start_worker()
        if self.stopping.is_set():
            return

        thread = threading.Thread(target=server.serve_forever, name="web", daemon=True)
        thread.start()
        self._cleanup.callback(thread.join, 5)
        self._cleanup.callback(server.shutdown)

        url = f"http://127.0.0.1:{server.server_port}/"
        click.echo("")
        click.echo("  " + _("Campaign is running at %(url)s", url=url))
        click.echo(_column(_("Dev mailbox:"), f"{url}devmail/  {mailbox_note}"))
        click.echo(_column(_("Instance:"), str(config.INSTANCE_PATH)))
        click.echo(login)
        click.echo("  " + _("Press Ctrl-C to stop everything."))
        click.echo("")

    def _prepare_database(self, app: Flask) -> str:
        from flask_migrate import upgrade

        from campaign.demo.loader import load_demo
        from campaign.extensions import db
        from campaign.i18n import terminal_language, use_reader_language

        with app.app_context():
            use_reader_language(terminal_language())  # a context of its own: its own `g`
            upgrade()
            result = load_demo(admin_password=self.admin_password)
            db.session.commit()
            if result.contacts:
                click.echo(
                    _(
                        "demo data: %(contacts)d contacts, %(lists)d lists, "
                        "%(segments)d segments, %(statements)d statements",
                        contacts=result.contacts,
                        lists=result.lists,
                        segments=result.segments,
                        statements=result.statements,
                    )
                )
                from campaign.demo.sign_on import demo_sign_on_line

                click.echo(demo_sign_on_line())
            sign_in = _("Sign in as:")
            if result.admin_email:
                return _column(
                    sign_in,
                    _(
                        "%(email)s  password: %(password)s  (shown only this once)",
                        email=result.admin_email,
                        password=result.admin_password,
                    ),
                )
            from campaign.demo.loader import ensure_admin

            first = ensure_admin().user
            db.session.rollback()
            return _column(
                sign_in,
                _("%(email)s  (password as printed at the first start)", email=first.email),
            )

    def _start_redis(self, app: Flask) -> None:
        if app.config["REDIS_URL"]:
            click.echo(
                _(
                    "using Redis at CAMPAIGN_REDIS_URL (%(url)s)",
                    url=_redacted(app.config["REDIS_URL"]),
                )
            )
            return
        from campaign.embedded_redis import embedded_for

        server = embedded_for(app.config)
        # Ctrl-C reaches every process of the terminal's group. Redis must outlive the worker
        # (which still writes job results), so it starts with SIGINT blocked and is stopped
        # by us, last. A blocked signal mask survives fork and exec.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            process = server.start(daemonize=False)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        if process is None:
            click.echo(
                _(
                    "using the embedded Redis server already running in %(directory)s",
                    directory=server.directory,
                )
            )
            return
        self._watched.append((_("Redis server"), process))

        def stop_redis() -> None:
            # SIGTERM is Redis's clean shutdown (AOF flushed); EmbeddedRedis.stop() would also
            # work but waits out redis-py's reconnect retries after SHUTDOWN closes the socket.
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

        self._cleanup.callback(stop_redis)

    def _start_worker(self) -> None:
        # Its own process group: Ctrl-C in the terminal reaches only us, and we stop the
        # worker before Redis so it can finish and record its current job.
        process = subprocess.Popen(
            [sys.executable, "-m", "workers"],
            stdin=subprocess.DEVNULL,
            process_group=0,
            # No threads are running yet, so preexec_fn is safe here.
            preexec_fn=_parent_death_signal,
        )
        name = _("RQ worker")
        self._watched.append((name, process))
        self._cleanup.callback(_stop_process, process, name)

    def _start_mail_sink(self, config: Any) -> str:
        from campaign.devmail import LOOPBACK_HOSTS, DevmailError, sink_for

        if config.MAIL_SERVER not in LOOPBACK_HOSTS:
            return _(
                "(not started: mail goes to %(server)s:%(port)s)",
                server=config.MAIL_SERVER,
                port=config.MAIL_PORT,
            )
        sink = sink_for(config)
        try:
            sink.start()
        except DevmailError as error:
            raise CommandError(str(error)) from None
        self._cleanup.callback(sink.stop)
        return _(
            "(SMTP sink on %(server)s:%(port)s, files in %(directory)s)",
            server=config.MAIL_SERVER,
            port=config.MAIL_PORT,
            directory=sink.directory,
        )


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc; none where there is no /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _stop_process(process: subprocess.Popen[bytes], name: str) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # RQ: warm shutdown, the current job finishes
    try:
        process.wait(timeout=WORKER_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        # Its children too (RQ's work horse runs in a session of its own, so the parent's
        # death does not reach it): found before the parent dies and they move to init.
        for child in _descendants(process.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGKILL)
        click.echo(
            _(
                "the %(name)s did not stop in %(seconds).0f s; killing it",
                name=name,
                seconds=WORKER_STOP_SECONDS,
            ),
            err=True,
        )
        process.kill()
        process.wait()


def _column(label: str, value: str) -> str:
    """A line of the started banner: the labels padded so the values line up (English:
    "  Dev mailbox:  …"; a longer label in another language pushes its value along)."""
    return f"  {label:<13} {value}"


def _redacted(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        return url.replace(parts.password, "***")
    return url.split("?")[0]
