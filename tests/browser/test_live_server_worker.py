"""The live server's RQ worker runs queued jobs against the live server's database."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Role, User
from campaign.queue import enqueue_after_commit, get_queue
from tests.browser.conftest import LiveServer
from tests.conftest import make_user


def count_users_job() -> int:
    """A job as workers/jobs.py writes them: own app context, one query."""
    from workers.context import job_context

    with job_context():
        return int(db.session.scalar(select(func.count(User.id))) or 0)


def test_a_job_enqueued_after_commit_runs_and_sees_committed_rows(
    live_server: LiveServer,
) -> None:
    with live_server.app.app_context():
        make_user(Role.VIEWER, "one@example.org")
        make_user(Role.VIEWER, "two@example.org")
        enqueue_after_commit(db.session(), f"{__name__}.count_users_job")
        db.session.commit()
        queue = get_queue()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            finished = queue.finished_job_registry.get_job_ids()
            if finished:
                break
            time.sleep(0.05)
        assert finished, "the worker did not run the job within 10 s"
        job = queue.fetch_job(finished[0])
        assert job is not None
        assert job.return_value() == 2
        db.session.remove()
