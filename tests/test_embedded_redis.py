"""The embedded Redis server: unix socket only, password required, persists with AOF."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ResponseError
from redis.retry import Retry

from campaign.embedded_redis import EmbeddedRedis


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis")
    yield server
    server.stop()


def _client(server: EmbeddedRedis, password: str | None) -> Redis:
    # No retries: redis-py retries a refused AUTH (a ConnectionError) with backoff by default.
    return Redis(
        unix_socket_path=str(server.socket_path),
        password=password,
        socket_timeout=5,
        retry=Retry(NoBackoff(), 0),
    )


def test_it_answers_only_with_its_password_and_keeps_data_across_a_restart(
    embedded: EmbeddedRedis,
) -> None:
    process = embedded.start(daemonize=False)
    assert process is not None, "a server we started ourselves must be handed back to us"
    assert embedded.is_running()

    # The password is generated once and readable only by its owner.
    assert stat.S_IMODE(embedded.password_path.stat().st_mode) == 0o600
    assert len(embedded.password) >= 32

    with pytest.raises((AuthenticationError, ResponseError), match=r"(?i)auth"):
        _client(embedded, None).ping()
    with pytest.raises((AuthenticationError, ResponseError)):
        _client(embedded, "wrong-password").ping()

    client = _client(embedded, embedded.password)
    assert client.config_get("port") == {"port": "0"}  # no TCP listener at all
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    client.set("campaign:test", "still here")
    client.close()

    embedded.stop()
    assert process.wait(timeout=10) == 0
    assert not embedded.is_running()

    restarted = embedded.start(daemonize=False)
    assert restarted is not None
    try:
        again = _client(embedded, embedded.password)
        assert again.get("campaign:test") == b"still here"
        again.close()
    finally:
        # SIGTERM is a clean shutdown too (AOF flushed), and quicker than SHUTDOWN here.
        restarted.terminate()
        assert restarted.wait(timeout=10) == 0
    assert not embedded.is_running()


def test_starting_again_while_it_runs_reuses_the_running_server(
    embedded: EmbeddedRedis,
) -> None:
    process = embedded.start(daemonize=False)
    assert process is not None
    try:
        # Someone else owns it now: we get no process, so we will not stop it either.
        assert embedded.start(daemonize=False) is None
        assert embedded.url.startswith(f"unix://{embedded.socket_path}?password=")
        client = Redis.from_url(embedded.url)
        assert client.ping()
        client.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_password_is_not_on_the_command_line(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start(daemonize=True)
    try:
        pid = int((tmp_path / "redis" / "redis.pid").read_text())
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        assert server.password not in command_line
        assert oct((tmp_path / "redis" / "redis.conf").stat().st_mode & 0o777) == "0o600"
    finally:
        server.stop()
    assert not server.is_running()
