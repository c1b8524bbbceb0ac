"""The forking worker runs send batches in its own process, and every other job in a horse
(decision 0077): the letters go out once each, as before, from one warm process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Delivery
from campaign.queue import get_queue
from tests import servers
from tests.burst_worker import app_for, launch_to_envoys, run_worker, worker_settings


def process_id_job() -> int:
    """A job other than a send batch: which process ran it."""
    return os.getpid()


def test_send_batches_run_in_the_worker_and_other_jobs_in_a_horse(
    tmp_path: Path,
    sqlite_template: Path,
    redis_server: servers.RedisServer,
    fault_smtp: Any,
) -> None:
    settings = worker_settings(tmp_path, sqlite_template, redis_server)
    settings.update(
        {
            "CAMPAIGN_MAIL_SERVER": fault_smtp.host,
            "CAMPAIGN_MAIL_PORT": str(fault_smtp.port),
            "CAMPAIGN_MAIL_DEFAULT_SENDER": "Human Rights Network <office@hrn.example.org>",
            "CAMPAIGN_PUBLIC_URL": "https://campaign.example.org",
            "CAMPAIGN_SEND_BATCH_SIZE": "2",  # three batches for five letters
        }
    )
    app = app_for(settings)
    with app.app_context():
        campaign_id, emails = launch_to_envoys(5)
        other = get_queue().enqueue(f"{__name__}.process_id_job")

        finished = run_worker(settings, "--burst", "--log-level", "WARNING")
        assert finished.returncode == 0, finished.stderr

        db.session.rollback()
        rows = list(db.session.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id)))
        assert sorted((row.email, row.status) for row in rows) == [(e, "sent") for e in emails]
        received = fault_smtp.by_recipient()
        assert sorted(received) == emails
        assert all(len(copies) == 1 for copies in received.values())
        # Each batch's claim names the process that sent it ("host:pid:claim"): one process
        # sent all three batches, and it is not the horse that ran the other job.
        claims = {row.claimed_by.rsplit(":", 1)[0] for row in rows}
        assert len({row.claimed_by for row in rows}) == 3
        assert len(claims) == 1
        sender_pid = int(claims.pop().rsplit(":", 1)[1])
        other.refresh()
        assert other.get_status() == "finished", finished.stderr
        assert other.return_value() != sender_pid
        db.session.remove()
        db.engine.dispose()
        get_queue().connection.close()
