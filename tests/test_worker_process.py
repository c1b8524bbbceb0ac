"""`python -m workers`: a forking RQ worker, JSON jobs, the app's database inside each job."""

from __future__ import annotations

from pathlib import Path

from rq import Queue
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Role, User
from campaign.queue import get_queue
from tests import servers
from tests.burst_worker import app_for, run_worker, worker_settings
from tests.conftest import make_user


def count_users_job(label: str) -> str:
    """A job as workers/jobs.py writes them: its own app context, one query."""
    from workers.context import job_context

    with job_context():
        return f"{label}: {db.session.scalar(select(func.count(User.id)))} users"


def test_the_worker_runs_queued_json_jobs_against_the_configured_database(
    tmp_path: Path, sqlite_template: Path, redis_server: servers.RedisServer
) -> None:
    settings = worker_settings(tmp_path, sqlite_template, redis_server)
    app = app_for(settings)
    with app.app_context():
        make_user(Role.VIEWER, "one@example.org")
        queue: Queue = get_queue()
        job = queue.enqueue(f"{__name__}.count_users_job", "counted")

        finished = run_worker(settings, "--burst", "--log-level", "WARNING")
        assert finished.returncode == 0, finished.stderr
        job.refresh()
        assert job.get_status() == "finished", finished.stderr
        assert job.return_value() == "counted: 1 users"
        db.session.remove()
        db.engine.dispose()
        get_queue().connection.close()


def test_the_worker_refuses_to_start_with_the_development_key(tmp_path: Path) -> None:
    finished = run_worker({"CAMPAIGN_INSTANCE_PATH": str(tmp_path)}, "--burst")
    assert finished.returncode == 2
    assert "CAMPAIGN_SECRET_KEY is still the development key" in finished.stderr
