"""Files nobody else reads: what `campaign dev` and the app write is the owner's alone."""

from __future__ import annotations

import os
import queue
import signal
import smtplib
import stat
import subprocess
import sys
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from campaign.config import PROJECT_ROOT
from campaign.models import Role
from tests import servers
from tests.web.test_imports import BAD_ROWS, upload

START_TIMEOUT = 90.0
STOP_TIMEOUT = 40.0
CAMPAIGN = Path(sys.executable).parent / "campaign"


def _open_to_others(root: Path) -> list[str]:
    """Every path under `root` (itself included) that another local user could read or enter."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        if mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {stat.filemode(mode)}")
    return found


def _start_dev(instance: Path, port: int, mail_port: int) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env.update(
        CAMPAIGN_INSTANCE_PATH=str(instance),
        CAMPAIGN_MAIL_PORT=str(mail_port),
        PYTHONUNBUFFERED="1",
    )
    runner = subprocess.Popen(
        [str(CAMPAIGN), "dev", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert runner.stdout is not None
        for line in runner.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    output: list[str] = []
    started = time.monotonic()
    while not any("Press Ctrl-C" in line for line in output):
        remaining = START_TIMEOUT - (time.monotonic() - started)
        if remaining <= 0 or runner.poll() is not None:
            _stop(runner)
            raise AssertionError("campaign dev did not start:\n" + "".join(output))
        try:
            output.append(lines.get(timeout=remaining))
        except queue.Empty:
            continue
    return runner, "".join(output)


def _stop(runner: subprocess.Popen[str]) -> None:
    if runner.poll() is None:
        os.killpg(runner.pid, signal.SIGINT)
    try:
        runner.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
    if runner.stdout is not None:
        runner.stdout.close()


def test_campaign_dev_leaves_nothing_readable_by_other_users(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    # As an older version left it: folders anyone could enter.
    maildir = instance / "devmail"
    folders = [instance, maildir, *(maildir / name for name in ("tmp", "new", "cur"))]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
    port, mail_port = servers.free_port(), servers.free_port()
    runner, _output = _start_dev(instance, port, mail_port)
    try:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = (
            "a@example.org",
            "b@example.org",
            "A confirmation link nobody else may read",
        )
        message.set_content("hello")
        with smtplib.SMTP("127.0.0.1", mail_port, timeout=10) as smtp:
            smtp.send_message(message)

        # A second terminal: no CAMPAIGN_DEBUG, no CAMPAIGN_SECRET_KEY, the same instance.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
        env["CAMPAIGN_INSTANCE_PATH"] = str(instance)
        second = subprocess.run(
            [str(CAMPAIGN), "schedules"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 0, second.stdout + second.stderr
        assert "development key" not in second.stderr

        expected = [
            instance / "secret_key",
            instance / "campaign.sqlite3",
            instance / "campaign.sqlite3-wal",
            instance / "redis",
            instance / "devmail",
        ]
        for path in expected:
            assert path.exists(), path
        assert list((instance / "devmail" / "new").iterdir())
        assert [p for p in (instance / "redis").rglob("*") if "appendonly" in p.name]
        assert _open_to_others(instance) == []
        key = (instance / "secret_key").read_text()
    finally:
        _stop(runner)
    assert runner.returncode == 0
    assert _open_to_others(instance) == []
    # The key stays for the next start: it is not replaced.
    assert (instance / "secret_key").read_text() == key


def test_an_uploaded_contact_file_is_readable_by_its_owner_only(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    login(Role.EDITOR)
    response = upload(client, BAD_ROWS.encode())
    assert response.status_code == 302, response.get_data(as_text=True)
    uploads = Path(app.instance_path) / "uploads"
    stored = [p for p in uploads.rglob("*") if p.is_file()]
    assert stored
    assert _open_to_others(uploads) == []


def _service_section(unit: Path) -> dict[str, str]:
    settings: dict[str, str] = {}
    section = ""
    for line in unit.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings[key] = value
    return settings


def test_the_systemd_units_create_private_files_and_folders() -> None:
    units = sorted((PROJECT_ROOT / "deploy" / "systemd").glob("*.service"))
    assert len(units) >= 2
    for unit in units:
        service = _service_section(unit)
        assert service.get("UMask") == "0077", unit.name
        assert service.get("StateDirectoryMode") == "0700", unit.name
    web = _service_section(PROJECT_ROOT / "deploy" / "systemd" / "campaign-web.service")
    # The access log without tokens comes with the shipped gunicorn settings.
    assert "-c /opt/campaign/deploy/gunicorn.conf.py" in web["ExecStart"]
    procfile = (PROJECT_ROOT / "deploy" / "Procfile").read_text()
    assert "-c deploy/gunicorn.conf.py" in procfile
