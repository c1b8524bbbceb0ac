"""The tracking hot path (decision 0076): what it keeps when Redis dies, and under threads."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from flask import Flask
from redis import Redis
from redis.exceptions import RedisError

from campaign.embedded_redis import EmbeddedRedis
from campaign.models.tracking import TrackingKind
from campaign.tracking import buffer, wsgi
from campaign.tracking.tokens import make_token, read_token, tracking_key
from tests import servers


def _hit(delivery_id: int = 1) -> buffer.Hit:
    return buffer.new_hit(
        TrackingKind.OPEN,
        campaign_id=1,
        delivery_id=delivery_id,
        link_id=None,
        remote_addr="198.51.100.7",
        user_agent="mail client",
    )


def test_every_hit_redis_acknowledged_survives_its_sigkill_and_pushing_resumes(
    tmp_path: Path,
) -> None:
    # The bundled Redis (appendonly, fsync every second) writes each command to its
    # append-only file before it answers: a killed Redis process loses no acknowledged hit.
    # (Only the machine losing power can cost the last second or two: see decision 0076.)
    server = EmbeddedRedis(tmp_path / "redis")
    process = server.start(daemonize=False)
    assert process is not None
    try:
        redis = Redis.from_url(server.url, socket_timeout=2)
        pusher = buffer.HitPusher(redis, "hits")
        assert all(pusher.push(_hit(n)) for n in range(300))
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        process = server.start(daemonize=False)
        assert process is not None
        assert redis.llen("hits") == 300
        # The same pusher goes on: a new connection, and the script loaded again (a
        # restarted Redis forgets its scripts).
        assert pusher.push(_hit(301))
        assert redis.llen("hits") == 301
        keys = {buffer.decode_hit(raw).hit_key for raw in redis.lrange("hits", 0, -1)}  # type: ignore[union-attr]
        assert len(keys) == 301
    finally:
        if process is not None:
            process.kill()
            process.wait(timeout=10)


def test_threads_sharing_a_pusher_record_each_hit_once(
    redis_server: servers.RedisServer,
) -> None:
    redis = Redis.from_url(redis_server.url)
    key = f"test-threads-{os.getpid()}"
    redis.delete(key)
    pusher = buffer.HitPusher(redis, key)
    results: list[bool] = []

    def push_many() -> None:
        results.extend(pusher.push(_hit(n)) for n in range(100))

    threads = [threading.Thread(target=push_many) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 600
    assert redis.llen(key) == 600
    redis.delete(key)


@pytest.mark.parametrize(
    "address",
    ["0.0.0.1", "9.9.9.9", "10.200.30.4", "199.249.255.255", "255.255.255.255", "1.2.3.40"],
)
def test_an_ipv4_network_is_the_one_ipaddress_gives(address: str) -> None:
    expected = str(ipaddress.ip_network(f"{address}/24", strict=False))
    assert buffer.ip_prefix(address) == expected


@pytest.mark.parametrize(
    "address", ["256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "١.2.3.4", "1.2.3.4\n", " 1.2.3.4"]
)
def test_what_is_not_an_ipv4_address_is_no_network(address: str) -> None:
    assert buffer.ip_prefix(address) == ""


def test_a_token_read_with_the_kept_key_is_the_token_read_with_the_secret() -> None:
    secret = "a-secret-key-" + "x" * 32
    token = make_token(
        TrackingKind.CLICK, campaign_id=7, delivery_id=8, link_id=9, secret_key=secret
    )
    read = read_token(token, key=tracking_key(secret))
    assert read == read_token(token, secret_key=secret)
    assert read is not None and (read.campaign_id, read.delivery_id, read.link_id) == (7, 8, 9)
    assert read_token(token, key=tracking_key("another-secret-" + "y" * 32)) is None


def test_a_redis_that_does_not_answer_is_left_alone_for_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A server that takes connections and closes them: each attempt is a broken connection.
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    clock = [1000.0]
    monkeypatch.setattr(buffer.time, "monotonic", lambda: clock[0])
    port = listener.getsockname()[1]
    pusher = buffer.HitPusher(Redis(port=port, socket_timeout=0.5), "hits")
    try:
        with pytest.raises(RedisError):
            pusher.push(_hit())
        tried = len(accepted)
        assert tried == 2  # the kept connection, then a new one
        # Hits in the next second fail at once, without a connection (nor its timeout).
        for _ in range(3):
            with pytest.raises(RedisError):
                pusher.push(_hit())
        assert len(accepted) == tried
        clock[0] += buffer.REDIS_RETRY_SECONDS
        with pytest.raises(RedisError):
            pusher.push(_hit())
        assert len(accepted) == tried + 2
    finally:
        listener.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_hits_lost_while_redis_is_down_make_one_warning_a_minute_with_their_count(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    middleware = wsgi.TrackingMiddleware(app, app.wsgi_app)
    # Nothing listens on port 1: every push fails.
    middleware.pusher = buffer.HitPusher(Redis(port=1, socket_connect_timeout=0.5), "hits")
    token = make_token(TrackingKind.OPEN, campaign_id=1, delivery_id=1)
    environ = {"PATH_INFO": f"/t/o/{token}.gif", "REQUEST_METHOD": "GET"}

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "campaign.tracking.wsgi"]

    with caplog.at_level(logging.WARNING, logger="campaign.tracking.wsgi"):
        for _ in range(50):
            assert middleware(environ, lambda *_: None) == [wsgi.PIXEL]  # type: ignore[arg-type]
        assert len(warnings()) == 1 and warnings()[0].startswith("1 tracking hit(s) not recorded")
        clock[0] += 60
        middleware(environ, lambda *_: None)  # type: ignore[arg-type]
    assert len(warnings()) == 2 and warnings()[1].startswith("50 tracking hit(s) not recorded")
