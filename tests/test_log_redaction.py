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
from campaign.services import calendar as calendar_service
from tests import servers
from tests.sign_on.test_signing import (
    PUBLIC_URL,
    deliver,
    individual_form,
    link_token,
    make_sign_on,
    submit,
)
from tests.web.test_unsubscribe import _launched_campaign

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
    campaign = _launched_campaign(["reader@example.org"])
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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
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
                time.sleep(0.2)
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
