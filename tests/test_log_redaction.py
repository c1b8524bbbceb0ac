"""Access logs keep no secret token: the dev server's request log and the shipped gunicorn's."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from campaign.config import PROJECT_ROOT
from campaign.extensions import db
from campaign.models import Delivery
from campaign.services.schedules import advocacy_calendar as calendar_service
from tests import servers
from tests.factories import CampaignFactory
from tests.sign_on.test_signing import (
    PUBLIC_URL,
    deliver,
    individual_form,
    link_token,
    make_sign_on,
    submit,
)
from tests.web.test_unsubscribe import SENT_BY_RIGHTS_WATCH

GUNICORN = Path(sys.executable).parent / "gunicorn"


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": "localhost",
        "MAIL_PORT": servers.free_port(),
        "PUBLIC_URL": PUBLIC_URL,
    }


def _secret_requests(app: Flask) -> tuple[list[tuple[str, str]], list[str]]:
    """(method, path) of an unsubscribe, a sign-on page and its confirmation and a feed fetch,
    with the secrets they carry."""
    campaign = CampaignFactory(recipients=["reader@example.org"], **SENT_BY_RIGHTS_WATCH)
    delivery = db.session.scalars(select(Delivery).where(Delivery.campaign_id == campaign.id)).one()
    unsubscribe = delivery.unsubscribe_token
    sign_on = make_sign_on()
    result = submit(sign_on, individual_form())
    assert result.signature_id is not None
    confirm = link_token(deliver(app, "signature_confirmation", result.signature_id)[-1])
    feed = calendar_service.feed_token()
    requests = [
        ("GET", f"/u/{unsubscribe}"),
        ("POST", f"/u/{unsubscribe}"),  # RFC 8058 one-click, as a mail provider sends it
        ("GET", f"/sign/{sign_on.token}"),
        ("GET", f"/sign/confirm/{confirm}"),
        ("GET", f"/calendar.ics?token={feed}"),
    ]
    return requests, [unsubscribe, sign_on.token, confirm, feed]


def _fetch(base: str, requests: list[tuple[str, str]]) -> list[int]:
    statuses = []
    for method, path in requests:
        data = b"List-Unsubscribe=One-Click" if method == "POST" else None
        request = urllib.request.Request(base + path, data=data, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310
                statuses.append(response.status)
        except urllib.error.HTTPError as error:
            statuses.append(error.code)
    return statuses


def _assert_redacted(log: str, secrets: list[str]) -> None:
    assert "/u/[redacted]" in log, log
    assert "/sign/confirm/[redacted]" in log, log
    assert "/calendar.ics?token=[redacted]" in log, log
    for secret in secrets:
        assert secret not in log, f"a token is in the access log:\n{log}"


@pytest.fixture
def werkzeug_log() -> Iterator[io.StringIO]:
    logger = logging.getLogger("werkzeug")
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield captured
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_the_dev_servers_request_log_hides_tokens(app: Flask, werkzeug_log: io.StringIO) -> None:
    requests, secrets = _secret_requests(app)
    # The server `campaign dev` runs, on the same app.
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        statuses = _fetch(f"http://127.0.0.1:{server.server_port}", requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert statuses == [200, 200, 200, 200, 200]
    _assert_redacted(werkzeug_log.getvalue(), secrets)


def test_the_shipped_gunicorn_access_log_hides_tokens(app: Flask, tmp_path: Path) -> None:
    if not GUNICORN.exists():
        pytest.skip("gunicorn is not installed (pip install -e '.[production]')")
    requests, secrets = _secret_requests(app)
    config = app.config["CAMPAIGN_CONFIG"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env.update(
        CAMPAIGN_DATABASE_URL=config.DATABASE_URL,
        CAMPAIGN_REDIS_URL=config.REDIS_URL,
        CAMPAIGN_INSTANCE_PATH=config.INSTANCE_PATH,
        CAMPAIGN_SECRET_KEY=config.SECRET_KEY,
        CAMPAIGN_PUBLIC_URL=config.PUBLIC_URL,
        CAMPAIGN_SESSION_COOKIE_SECURE="false",
    )
    port = servers.free_port()
    access_log = tmp_path / "access.log"
    process = subprocess.Popen(
        [
            str(GUNICORN),
            "-c",
            str(PROJECT_ROOT / "deploy" / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--access-logfile",
            str(access_log),
            "wsgi:app",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (
                    process.stderr.read() if process.stderr and process.poll() is not None else ""
                )
                time.sleep(0.05)
        statuses = _fetch(f"http://127.0.0.1:{port}", requests)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
    assert statuses == [200, 200, 200, 200, 200]
    _assert_redacted(access_log.read_text(), secrets)


# --- error logs: Flask's "Exception on <path>" and gunicorn's error log ----------------------

TOKEN_PATHS = {
    "/u/ErrUnsubscribeTokenX": "/u/[redacted]",
    "/sign/ErrSignOnTokenX": "/sign/[redacted]",
    "/login/reset/ErrResetTokenX": "/login/reset/[redacted]",
    # The same routes percent-encoded: werkzeug decodes them to /u/… before routing.
    "/%75/ErrEncodedUnsubX": "/u/[redacted]",
    "/%73ign/ErrEncodedSignX": "/sign/[redacted]",
}


def _broken_app_overrides(tmp_path: Path, redis_url: str) -> dict[str, Any]:
    # A database without tables: every token page fails with a 500 and an error log entry.
    return {
        "REDIS_URL": redis_url,
        "SECRET_KEY": "k" * 64,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        "PUBLIC_URL": PUBLIC_URL,
        "PROPAGATE_EXCEPTIONS": False,
    }


def test_the_error_log_of_a_failing_token_page_hides_the_token(
    tmp_path: Path, redis_server: servers.RedisServer
) -> None:
    from campaign import create_app

    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    root = logging.getLogger()
    root.addHandler(handler)  # where an operator's logging configuration sends records
    try:
        app = create_app(_broken_app_overrides(tmp_path, redis_server.url))
        client = app.test_client()
        for path in TOKEN_PATHS:
            assert client.get(path).status_code == 500
    finally:
        root.removeHandler(handler)
    log = captured.getvalue()
    for path, shown in TOKEN_PATHS.items():
        assert f"Exception on {shown} [GET]" in log, log
        assert path.rsplit("/", 1)[1] not in log, log


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("GET /%75/Abc HTTP/1.1", "GET /u/[redacted] HTTP/1.1"),
        ("GET /%55/Abc HTTP/1.1", "GET /U/Abc HTTP/1.1"),  # /U/ is no route of ours
        ("GET /%73ign/%63onfirm/Abc", "GET /sign/confirm/[redacted]"),
        ("GET /u%2FAbc", "GET /u/[redacted]"),
        ("GET /login/%72eset/Abc", "GET /login/reset/[redacted]"),
        # An escaped line break stays escaped: decoding must not let a request forge log lines.
        ("GET /x%0Ay", "GET /x%0Ay"),
    ],
)
def test_percent_encoded_token_routes_are_recognised(line: str, expected: str) -> None:
    from campaign.log_redaction import redact

    assert redact(line) == expected


def test_the_shipped_gunicorn_logs_at_info_level() -> None:
    # At debug level gunicorn's pre_request hook logs every request path.
    source = (PROJECT_ROOT / "deploy" / "gunicorn.conf.py").read_text()
    assert '\nloglevel = "info"' in source


def test_the_shipped_gunicorn_error_log_hides_tokens_even_at_debug_level(
    tmp_path: Path, redis_server: servers.RedisServer
) -> None:
    if not GUNICORN.exists():
        pytest.skip("gunicorn is not installed (pip install -e '.[production]')")
    overrides = _broken_app_overrides(tmp_path, redis_server.url)
    redis_url = redis_server.url
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env.update(
        CAMPAIGN_DATABASE_URL=overrides["DATABASE_URL"],
        CAMPAIGN_REDIS_URL=redis_url,
        CAMPAIGN_INSTANCE_PATH=overrides["INSTANCE_PATH"],
        CAMPAIGN_SECRET_KEY=overrides["SECRET_KEY"],
        CAMPAIGN_PUBLIC_URL=PUBLIC_URL,
    )
    port = servers.free_port()
    access_log = tmp_path / "access.log"
    error_log = tmp_path / "error.log"
    with error_log.open("w") as stderr:
        process = subprocess.Popen(
            [
                str(GUNICORN),
                "-c",
                str(PROJECT_ROOT / "deploy" / "gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--log-level",
                "debug",
                "--access-logfile",
                str(access_log),
                "wsgi:app",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/", timeout=2):
                    break
            except urllib.error.HTTPError:
                break  # the server answers
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, error_log.read_text()
                time.sleep(0.05)
        statuses = _fetch(f"http://127.0.0.1:{port}", [("GET", path) for path in TOKEN_PATHS])
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert statuses == [500] * len(TOKEN_PATHS)
    log = error_log.read_text()
    logs = log + access_log.read_text()
    assert "Exception on /u/[redacted] [GET]" in log, log
    for path in TOKEN_PATHS:
        assert path.rsplit("/", 1)[1] not in logs, logs


def test_the_nginx_example_keeps_tokens_out_of_its_logs_and_sends_hsts_once() -> None:
    deploy = (PROJECT_ROOT / "docs" / "deploy.md").read_text()
    nginx = deploy.split("```nginx", 1)[1].split("```", 1)[0]
    # The error log writes the request line of every failed request: only critical ones.
    assert "error_log /var/log/nginx/campaign.error.log crit;" in nginx
    # The port-80 redirect would log the token of a link typed or followed as http://.
    plain = nginx[nginx.index("listen 80;") :]
    assert "access_log off;" in plain
    # The app sends Strict-Transport-Security itself; a second copy from nginx is a duplicate.
    assert "add_header Strict-Transport-Security" not in nginx
