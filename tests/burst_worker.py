"""`python -m workers --burst` in a subprocess, against a migrated SQLite copy and the test's Redis.

For tests that must see the real worker process (its queues, its order, its start-up checks)
rather than jobs run in-process (tests/webhooks/helpers.run_queued_jobs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from flask import Flask

from campaign import create_app
from campaign.config import PROJECT_ROOT
from tests import servers


def worker_settings(
    tmp_path: Path, sqlite_template: Path, redis_server: servers.RedisServer
) -> dict[str, str]:
    """The worker's CAMPAIGN_* environment: its own database copy, instance and queue."""
    database = tmp_path / "campaign.sqlite3"
    shutil.copyfile(sqlite_template, database)
    return {
        "CAMPAIGN_SECRET_KEY": "worker-test-secret-key",
        "CAMPAIGN_INSTANCE_PATH": str(tmp_path / "instance"),
        "CAMPAIGN_DATABASE_URL": f"sqlite:///{database}",
        "CAMPAIGN_REDIS_URL": redis_server.url,
        "CAMPAIGN_QUEUE_NAME": f"worker-{tmp_path.name}",
    }


def app_for(settings: dict[str, str]) -> Flask:
    """The app the worker will build from `settings`, to queue its jobs from this process."""
    return create_app({key.removeprefix("CAMPAIGN_"): value for key, value in settings.items()})


def run_worker(settings: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m workers` with only `settings` of the CAMPAIGN_* environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", "workers", *arguments],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def launch_to_envoys(count: int) -> tuple[int, list[str]]:
    """A campaign launched to `count` envoys (envoy0@embassy.example, ...), from the app's
    default sender, and committed: its send jobs wait in the queue for the worker. Run in
    the context of `app_for`'s app. The campaign's id, and the addresses in order."""
    from flask import current_app

    from tests.factories import CampaignFactory

    emails = [f"envoy{n}@embassy.example" for n in range(count)]
    campaign = CampaignFactory(
        name="Free the defenders",
        recipients=emails,
        from_address=current_app.config["MAIL_DEFAULT_SENDER"],
        launched=True,
        commit=True,  # the send jobs are queued when the launch commits
    )
    return int(campaign.id), emails
