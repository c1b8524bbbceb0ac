"""`campaign dev` starts every local service, prints how to sign in, and stops them all."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests import servers

START_TIMEOUT = 90.0
STOP_TIMEOUT = 40.0


def _children_of(pid: int) -> set[int]:
    """Every descendant of `pid`, from /proc (Linux)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_campaign_dev_serves_the_app_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port, mail_port = servers.free_port(), servers.free_port()
    instance = tmp_path / "i"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env.update(
        CAMPAIGN_INSTANCE_PATH=str(instance),
        CAMPAIGN_MAIL_PORT=str(mail_port),
        CAMPAIGN_DEMO_ADMIN_PASSWORD="first start password",
        PYTHONUNBUFFERED="1",
        # Paced, so that the worker is still in the middle of a batch when Ctrl-C comes.
        CAMPAIGN_MAIL_RATE_PER_SECOND="4",
    )
    campaign = Path(sys.executable).parent / "campaign"
    started = time.monotonic()
    # A session of its own, so the test can send SIGINT to the whole group as Ctrl-C does.
    runner = subprocess.Popen(
        [str(campaign), "dev", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert runner.stdout is not None
        for line in runner.stdout:
            lines.put(line)

    pumping = threading.Thread(target=pump, daemon=True)
    pumping.start()
    try:
        while not any("Press Ctrl-C" in line for line in output):
            remaining = START_TIMEOUT - (time.monotonic() - started)
            assert remaining > 0 and runner.poll() is None, "".join(output)
            try:
                output.append(lines.get(timeout=remaining))
            except queue.Empty:
                raise AssertionError("campaign dev did not start:\n" + "".join(output)) from None
        startup_seconds = time.monotonic() - started
        text = "".join(output)
        assert f"Campaign is running at http://127.0.0.1:{port}/" in text
        assert "Sign in as:   admin@example.org  password: first start password" in text
        assert "demo data: 413 contacts" in text

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            assert json.load(response) == {"status": "ok"}

        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = (
            "a@example.org",
            "b@example.org",
            "Reaches the dev mailbox",
        )
        message.set_content("hello")
        with smtplib.SMTP("127.0.0.1", mail_port, timeout=10) as smtp:
            smtp.send_message(message)
        assert len(list((instance / "devmail" / "new").iterdir())) == 1

        redis_pid = int((instance / "redis" / "redis.pid").read_text())
        children = _children_of(runner.pid)
        assert redis_pid in children
        assert len(children) >= 2, "expected at least Redis and the RQ worker"
        assert all(_alive(pid) for pid in children)

        # The demo's draft campaign goes out to the sink; Ctrl-C comes while it is sending.
        launched = subprocess.run(
            [str(campaign), "send", "1", "--override", "--reason", "the demo's own mailbox"],
            # As a terminal beside scripts/run (the demo's sender is at localhost).
            env={
                **env,
                "CAMPAIGN_DEBUG": "true",
                "CAMPAIGN_PUBLIC_URL": f"http://127.0.0.1:{port}",
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert launched.returncode == 0, launched.stdout + launched.stderr
        received = instance / "devmail" / "new"
        deadline = time.monotonic() + START_TIMEOUT
        while len(list(received.iterdir())) < 4:
            assert time.monotonic() < deadline, "the campaign's letters never reached the sink"
            time.sleep(0.05)
        children = _children_of(runner.pid)  # the work horse sending the batch among them
    finally:
        stop_asked = time.monotonic()
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGINT)
        try:
            runner.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
            raise
        finally:
            # Closed whatever happened above: a pipe left open is reported as a
            # ResourceWarning in whichever test runs next, hiding this one's failure.
            pumping.join(timeout=10)
            if runner.stdout is not None:
                runner.stdout.close()
    while not lines.empty():
        output.append(lines.get())
    text = "".join(output)
    stop_seconds = time.monotonic() - stop_asked
    assert runner.returncode == 0, text
    # The worker stopped by itself after the letter it was sending: never killed, and the
    # campaign was not paused by its letters meeting a sink already gone.
    assert "killing it" not in text, text
    assert "paused" not in text, text
    assert "stopped: web app, worker, mail sink and Redis are down." in text
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in children if _alive(pid)], "orphans left behind"
    assert _port_free(port), "the web port is still taken"
    assert _port_free(mail_port), "the SMTP sink's port is still taken"
    sent = len(list((instance / "devmail" / "new").iterdir())) - 1
    print(f"campaign dev: started in {startup_seconds:.1f} s, stopped in {stop_seconds:.1f} s")
    print(f"letters received before the stop: {sent}")


def test_a_worker_killed_at_last_takes_its_work_horse_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last resort kills the worker's children too: RQ's horse runs in its own session."""
    from campaign.commands import dev

    monkeypatch.setattr(dev, "WORKER_STOP_SECONDS", 0.5)
    horse_pid = tmp_path / "horse"
    # A "worker" that ignores SIGTERM and whose "horse" lives in a session of its own.
    script = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "horse = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " start_new_session=True)\n"
        f"open({str(horse_pid)!r}, 'w').write(str(horse.pid))\n"
        "time.sleep(60)\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", script])
    for _n in range(200):
        if horse_pid.exists() and horse_pid.read_text():
            break
        time.sleep(0.05)
    horse = int(horse_pid.read_text())
    try:
        dev._stop_process(worker, "RQ worker")  # type: ignore[arg-type]
        assert worker.poll() is not None
        for _n in range(100):
            if not _alive(horse):
                break
            time.sleep(0.05)
        assert not _alive(horse)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(horse, signal.SIGKILL)


def test_a_stop_reaches_work_horses_forked_after_it(redis_server: servers.RedisServer) -> None:
    """A SIGTERM that came while the worker waited for the fork lock is not lost: the flag
    is set in the worker itself, and fork copies it into the horse."""
    from redis import Redis

    from workers import context
    from workers.__main__ import CampaignWorker

    worker = CampaignWorker(["test"], connection=Redis.from_url(redis_server.url))
    try:
        worker.handle_warm_shutdown_request()
        assert context.stop_requested()
        child = os.fork()
        if child == 0:  # the "horse"
            os._exit(0 if context.stop_requested() else 1)
        _pid, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        context._stopping.clear()
