"""Workers that survive: a lost worker's rows come back within a minute, a restarted unit is
not refused for its name, and a Redis outage does not end the worker.

Real `python -m workers` processes against SQLite, a private Redis server and the fault SMTP
server (the scene of tests/test_sending_faults.py). Waits are bounded ceilings, not timings.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rq import Worker

from tests.test_sending_faults import PER_MESSAGE_STALL, Scene, _make_scene

WAIT = 40.0  # seconds: a ceiling against a hung test


@pytest.fixture
def scene(tmp_path: Path, sqlite_template: Path) -> Iterator[Scene]:
    database = tmp_path / "campaign.sqlite3"
    shutil.copyfile(sqlite_template, database)
    yield from _make_scene(tmp_path, f"sqlite:///{database}")


def _wait(condition: Callable[[], bool], what: str, scene: Scene) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} within {WAIT:.0f} s\n{scene.workers.log_tail()}")


def _registered(scene: Scene) -> dict[str, int]:
    """Names of the live RQ workers in Redis, with their process ids."""
    with scene.redis.client() as connection:
        return {w.name: int(w.pid or 0) for w in Worker.all(connection=connection)}


def test_a_lost_claim_is_taken_back_after_its_heartbeat_and_a_live_one_is_kept(
    scene: Scene,
) -> None:
    # The job may run for 600 s (SEND_LEASE_SECONDS), but a claim lives on its heartbeat:
    # a worker that stops renewing it (killed) loses its rows after 4 heartbeats, not 600 s.
    from datetime import UTC, datetime

    from campaign.extensions import db
    from campaign.services.sending import batches as sending

    scene.app.config.update(SEND_LEASE_SECONDS=600, SEND_HEARTBEAT_SECONDS=1)
    scene.seed(4)
    scene.launch()
    lost = sending.claim_deliveries(scene.campaign_id, "killed:1", 2)
    live = sending.claim_deliveries(scene.campaign_id, "alive:1", 2)
    db.session.commit()
    with sending.LeaseKeeper(scene.app, "alive:1") as keeper:
        deadline = time.monotonic() + WAIT
        taken_back = 0
        while time.monotonic() < deadline and not taken_back:
            time.sleep(0.1)  # the reconciler's look, often: the lease ends ~4 s in
            taken_back = sending.reconcile(commit=db.session.commit).requeued
        assert keeper.holds()
    rows = {row.id: row for row in scene.deliveries()}
    assert taken_back == 2
    assert [rows[i].status for i in lost] == ["in_doubt", "queued"]
    assert rows[lost[0]].attempts == 1, "the try possibly in flight counts"
    assert all(rows[i].status == "sending" for i in live), "a renewed claim is kept"
    assert all(rows[i].lease_until > datetime.now(UTC) for i in live)


def test_a_worker_restarted_under_the_same_name_after_a_kill_starts_at_once(
    scene: Scene,
) -> None:
    name = "host-1"  # what the unit's `--name %H-%i` gives, again after the restart
    first = scene.workers.start(name=name)
    scene.workers.prepare()  # the restart's process imports while the first one registers
    _wait(lambda: name in _registered(scene), "the first worker did not register", scene)
    scene.workers.kill(first)
    second = scene.workers.start(name=name)
    _wait(
        lambda: _registered(scene).get(name) == second.pid,
        "the restarted worker did not register under its name",
        scene,
    )
    time.sleep(1)
    assert second.poll() is None, scene.workers.log_tail()


def _listening(scene: Scene, name: str) -> bool:
    """Whether worker `name` waits in RQ's dequeue (its state is set after RQ's signal
    handlers are installed)."""
    with scene.redis.client() as connection:
        return any(
            w.name == name and w.get_state() == "idle" for w in Worker.all(connection=connection)
        )


def _heard_from_since(scene: Scene, name: str, since: datetime) -> bool:
    """Whether worker `name` registered or sent a heartbeat at `since` or later."""
    with scene.redis.client() as connection:
        for worker in Worker.all(connection=connection):
            if worker.name == name and worker.last_heartbeat and worker.last_heartbeat >= since:
                return True
    return False


def test_a_worker_waits_for_redis_to_come_back_and_carries_on(scene: Scene) -> None:
    worker = scene.workers.start(name="outage-1")
    _wait(lambda: "outage-1" in _registered(scene), "the worker did not register", scene)
    scene.redis.kill()
    time.sleep(3)
    assert worker.poll() is None, "the worker must not exit while Redis is away"
    restarted = datetime.now(UTC)
    scene.redis.start()
    # Redis keeps its append-only file, so the registration from before the outage is back at
    # once: only a heartbeat (or a new registration) stamped after the restart shows that the
    # worker itself is back.
    _wait(
        lambda: _heard_from_since(scene, "outage-1", restarted),
        "the worker did not come back",
        scene,
    )

    scene.seed(20)
    scene.smtp.stall(PER_MESSAGE_STALL, stage="data", times=None)
    scene.launch()
    _wait(lambda: scene.finished(), "the campaign did not finish", scene)
    assert worker.poll() is None, scene.workers.log_tail()
    assert scene.workers.unexpected_exits == 0
    scene.assert_everyone_written_to_once(extra_copies_allowed=0)


def test_a_worker_left_idle_takes_the_next_campaign(scene: Scene) -> None:
    # RQ sets the long socket timeout of its blocking dequeue on the connection pool; a
    # connection the background threads had opened before kept a short one, so an idle
    # worker failed every dequeue ("Timeout reading") and never ran a job.
    worker = scene.workers.start(name="idle-1")
    _wait(lambda: "idle-1" in _registered(scene), "the worker did not register", scene)
    time.sleep(8)  # idle past the short timeout the background threads' connections had
    scene.seed(3)
    scene.launch()
    _wait(lambda: scene.finished(), "the campaign did not finish", scene)
    assert "Timeout reading" not in scene.workers.log_tail()
    assert worker.poll() is None, scene.workers.log_tail()
    scene.assert_everyone_written_to_once(extra_copies_allowed=0)


def test_an_idle_worker_stops_on_sigterm(scene: Scene) -> None:
    # systemd stops a unit with SIGTERM and waits 300 s before SIGKILL: a worker that went
    # back to work instead of exiting would be killed mid-batch at every stop.
    import signal
    import subprocess

    worker = scene.workers.start(name="stop-1")
    # In RQ's dequeue, its own signal handlers installed.
    _wait(lambda: _listening(scene, "stop-1"), "the worker did not wait for jobs", scene)
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=15)
    except subprocess.TimeoutExpired:
        log = scene.workers.log_tail()
        raise AssertionError(f"SIGTERM did not stop an idle worker\n{log}") from None
    assert "goes back to work" not in scene.workers.log_tail()
