"""Browser fixtures: the real app on a live port with an RQ worker, and Playwright's Chromium.

Each test gets its own migrated SQLite file, queue name, instance folder and mail sink, so
nothing one test writes is seen by the next. Chromium is Debian's (/usr/bin/chromium);
Playwright never downloads a browser of its own.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask

from campaign import create_app
from campaign.devmail import DevmailSink
from campaign.extensions import db
from campaign.models import Role
from tests import servers
from tests.conftest import TEST_PASSWORD, make_user

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page
    from rq import SimpleWorker

# Without these, Chromium tries Google's hosts at start and this closed network refuses them.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Playwright's default of 30 s hides a broken page behind a long wait.
DEFAULT_TIMEOUT_MS = 10_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@dataclass
class LiveServer:
    url: str
    app: Flask
    mail_port: int
    devmail_path: Path


def _thread_worker(app: Flask, stopping: threading.Event) -> SimpleWorker:
    from rq import SimpleWorker
    from rq.exceptions import StopRequested
    from rq.serializers import JSONSerializer
    from rq.timeouts import TimerDeathPenalty
    from rq.worker import WorkerStatus

    from campaign.queue import WEBHOOKS, get_queue

    class ThreadWorker(SimpleWorker):
        # Signal handlers and SIGALRM timeouts only work in the main thread; this runs in another.
        death_penalty_class = TimerDeathPenalty

        def _install_signal_handlers(self) -> None:
            pass

        @property
        def dequeue_timeout(self) -> float:  # type: ignore[override]
            # RQ blocks 1 s at least (worker_ttl - 15), and the stop is seen only after it:
            # every browser test's teardown waited ~0.7 s for it. Redis takes 0.2 s as well.
            return 0.2

        def heartbeat(self, *args: Any, **kwargs: Any) -> Any:
            # The idle loop heartbeats after every dequeue timeout; stop there, never mid-job.
            if stopping.is_set() and self.get_state() == WorkerStatus.IDLE:
                raise StopRequested
            return super().heartbeat(*args, **kwargs)

        def subscribe(self) -> None:
            # RQ's own listens for commands in reads of 60 s, and redis-py's stop() waits the
            # read out: a stopping worker then held the test's teardown for 15 s (the join
            # below) about one time in two under xdist. Reads of 0.2 s end it at once.
            self.pubsub = self.connection.pubsub()
            self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
            self.pubsub_thread = self.pubsub.run_in_thread(
                sleep_time=0.2,
                daemon=True,
                exception_handler=getattr(self, "_pubsub_exception_handler", None),
            )

    with app.app_context():
        queue = get_queue()
        # The same queues as `python -m workers`: sending first, then webhooks (0068).
        queues = [queue, get_queue(WEBHOOKS)]
        # A 0.2 s blocking dequeue (dequeue_timeout above): a stop request is seen at once.
        return ThreadWorker(
            queues, connection=queue.connection, serializer=JSONSerializer, worker_ttl=16
        )


@pytest.fixture
def live_server(
    tmp_path: Path, sqlite_template: Path, redis_server: servers.RedisServer
) -> Iterator[LiveServer]:
    """The real app (CSRF on) served on 127.0.0.1, an RQ worker, and the dev mail sink."""
    import workers.context

    database = tmp_path / "campaign.sqlite3"
    shutil.copyfile(sqlite_template, database)
    mail_port = servers.free_port()
    app = create_app(
        {
            "TESTING": True,
            "DEBUG": False,
            "SECRET_KEY": "browser-test-secret-key",
            # As in tests/conftest.py: nobody must set up two-factor unless a test says so.
            "TOTP_REQUIRED_ROLES": "none",
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": f"sqlite:///{database}",
            "REDIS_URL": redis_server.url,
            # A queue per test: a job left over from one test never runs against the next.
            "QUEUE_NAME": f"browser-{tmp_path.name}",
            "SESSION_COOKIE_SECURE": False,
            "WTF_CSRF_ENABLED": True,
            "MAIL_SERVER": "localhost",
            "MAIL_PORT": mail_port,
            # Addresses launches accept outside debug (tests/test_launch_checks.py).
            "MAIL_DEFAULT_SENDER": "Campaign <campaign@example.org>",
            "PUBLIC_URL": "https://campaign.example.org",
            "MAIL_SUPPRESS_SEND": False,
        }
    )
    with app.app_context():
        # As the `app` fixture does: nothing in Redis from an earlier test of this worker.
        # Sign-in failures another browser test typed on purpose count against 127.0.0.0/24
        # for minutes, and a later test's sign-in met "Too many sign-in attempts from your
        # network" (a CI run of issue 18's third round).
        from campaign.queue import get_redis

        get_redis().flushdb()
    config = app.config["CAMPAIGN_CONFIG"]
    sink = DevmailSink(config.devmail_path, "localhost", mail_port)
    sink.start()

    # Jobs call workers.context.get_app(); they must see this app and its database.
    previous_app = workers.context._app
    workers.context.set_app(app)
    stopping = threading.Event()
    worker = _thread_worker(app, stopping)
    worker_thread = threading.Thread(
        target=worker.work, kwargs={"logging_level": "WARNING"}, name="rq-worker", daemon=True
    )
    try:
        with servers.serve(app) as url:
            worker_thread.start()
            try:
                yield LiveServer(
                    url=url, app=app, mail_port=mail_port, devmail_path=config.devmail_path
                )
            finally:
                stopping.set()
                worker_thread.join(timeout=15)
    finally:
        sink.stop()
        workers.context._app = previous_app
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        if "campaign_redis" in app.extensions:
            app.extensions["campaign_redis"].close()


def _chromium_path() -> str | None:
    for candidate in (
        os.environ.get("CAMPAIGN_TEST_CHROMIUM", ""),
        "/usr/bin/chromium",
        shutil.which("chromium") or "",
        shutil.which("chromium-browser") or "",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium driven by Playwright (one per test session)."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        servers.service_missing("Chromium", f"the playwright package is missing ({error})")
    executable = _chromium_path()
    if executable is None:
        servers.service_missing(
            "Chromium", "no /usr/bin/chromium or chromium on PATH (apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS
            )
        except PlaywrightError as error:
            servers.service_missing("Chromium", f"{executable} did not start: {error}")
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    """A fresh context (no cookies) and page per test; relative URLs go to the live server."""
    context = browser.new_context(base_url=live_server.url, accept_downloads=True)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    new_page = context.new_page()
    yield new_page
    context.close()


def sign_in_through_form(page: Page, email: str, password: str = TEST_PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


@pytest.fixture
def signed_in_page(page: Page, live_server: LiveServer) -> Callable[..., Page]:
    """signed_in_page(Role.EDITOR): create a user of that role, sign in through the form."""

    def _sign_in(role: Role = Role.ADMIN, email: str | None = None) -> Page:
        with live_server.app.app_context():
            user = make_user(role, email)
            address = user.email
            db.session.remove()
        sign_in_through_form(page, address)
        if page.url.rstrip("/").endswith("/login") or "/login?" in page.url:
            raise AssertionError(f"signing in as {address} failed: {page.inner_text('main')}")
        return page

    return _sign_in


def stored_mail(live_server: LiveServer) -> list[Any]:
    """Summaries of what the live server's mail sink received, newest first."""
    from campaign.devmail import list_messages

    return list_messages(live_server.devmail_path)
