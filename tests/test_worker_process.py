"""`python -m workers`: a forking RQ worker, JSON jobs, the app's database inside each job."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from rq import Queue
from sqlalchemy import func, select

from campaign import create_app
from campaign.config import PROJECT_ROOT
from campaign.extensions import db
from campaign.models import Role, User
from campaign.queue import get_queue
from tests import servers
from tests.conftest import make_user


def count_users_job(label: str) -> str:
    """A job as workers/jobs.py writes them: its own app context, one query."""
    from workers.context import job_context

    with job_context():
        return f"{label}: {db.session.scalar(select(func.count(User.id)))} users"


def test_the_worker_runs_queued_json_jobs_against_the_configured_database(
    tmp_path: Path, sqlite_template: Path, redis_server: servers.RedisServer
) -> None:
    database = tmp_path / "campaign.sqlite3"
    shutil.copyfile(sqlite_template, database)
    settings = {
        "CAMPAIGN_SECRET_KEY": "worker-test-secret-key",
        "CAMPAIGN_INSTANCE_PATH": str(tmp_path / "instance"),
        "CAMPAIGN_DATABASE_URL": f"sqlite:///{database}",
        "CAMPAIGN_REDIS_URL": redis_server.url,
        "CAMPAIGN_QUEUE_NAME": f"worker-{tmp_path.name}",
    }
    app = create_app({key.removeprefix("CAMPAIGN_"): value for key, value in settings.items()})
    with app.app_context():
        make_user(Role.VIEWER, "one@example.org")
        queue: Queue = get_queue()
        job = queue.enqueue(f"{__name__}.count_users_job", "counted")

        env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
        env.update(settings)
        finished = subprocess.run(
            [sys.executable, "-m", "workers", "--burst", "--log-level", "WARNING"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert finished.returncode == 0, finished.stderr
        job.refresh()
        assert job.get_status() == "finished", finished.stderr
        assert job.return_value() == "counted: 1 users"
        db.session.remove()
        db.engine.dispose()
        get_queue().connection.close()


def test_the_worker_refuses_to_start_with_the_development_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env["CAMPAIGN_INSTANCE_PATH"] = str(tmp_path)
    finished = subprocess.run(
        [sys.executable, "-m", "workers", "--burst"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 2
    assert "CAMPAIGN_SECRET_KEY is still the development key" in finished.stderr
