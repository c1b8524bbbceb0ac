"""A copy restored from a backup taken mid-send sends nothing through the real worker (its
reconciler, its tick, the original's send jobs still in Redis) until an admin confirms;
then the letters go once each (decision 0087)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Campaign, CampaignStatus, Delivery, Role
from campaign.queue import get_queue
from campaign.services.backups import hold as holds
from campaign.services.backups.archive import write_backup
from campaign.services.backups.restore import restore_backup
from campaign.services.sending import campaigns
from tests import servers
from tests.backups.helpers import make_identity
from tests.burst_worker import app_for, launch_to_envoys, run_worker, worker_settings
from tests.conftest import make_user


def _settings(
    folder: Path, template: Path, redis: servers.RedisServer, smtp: Any
) -> dict[str, str]:
    folder.mkdir()
    settings = worker_settings(folder, template, redis)
    settings.update(
        {
            "CAMPAIGN_MAIL_SERVER": smtp.host,
            "CAMPAIGN_MAIL_PORT": str(smtp.port),
            "CAMPAIGN_MAIL_DEFAULT_SENDER": "Human Rights Network <office@hrn.example.org>",
            "CAMPAIGN_PUBLIC_URL": "https://campaign.example.org",
        }
    )
    return settings


def _closed(app: Any) -> None:
    db.session.remove()
    db.engine.dispose()
    get_queue().connection.close()


def test_a_restored_copy_of_a_campaign_mid_send_sends_nothing_until_confirmed(
    tmp_path: Path,
    sqlite_template: Path,
    redis_server: servers.RedisServer,
    fault_smtp: Any,
) -> None:
    identity, public = make_identity(tmp_path)
    archive = tmp_path / "mid-send.age"
    original = _settings(tmp_path / "original", sqlite_template, redis_server, fault_smtp)
    with app_for(original).app_context():
        campaign_id, emails = launch_to_envoys(3)  # its send jobs wait in Redis
        write_backup(archive, [public])
        _closed(None)

    # The copy: another database, the same queue, so the original's jobs are there too.
    copy = _settings(tmp_path / "copy", sqlite_template, redis_server, fault_smtp)
    copy["CAMPAIGN_QUEUE_NAME"] = original["CAMPAIGN_QUEUE_NAME"]
    copy_app = app_for(copy)
    with copy_app.app_context():
        restore_backup(archive, identity)
        assert len(get_queue()) > 0  # the original's send jobs, for this campaign id

        finished = run_worker(copy, "--burst", "--log-level", "WARNING")
        assert finished.returncode == 0, finished.stderr

        assert fault_smtp.by_recipient() == {}
        db.session.rollback()
        statuses = db.session.scalars(
            select(Delivery.status).where(Delivery.campaign_id == campaign_id)
        ).all()
        assert sorted(statuses) == ["queued"] * 3
        campaign = db.session.get(Campaign, campaign_id)
        assert campaign is not None and campaign.status == CampaignStatus.PAUSED.value
        assert "restore" in campaign.status_reason

        # An admin confirms; the campaign stays paused until someone resumes it.
        holds.release_restore_hold(make_user(Role.ADMIN, "admin@example.org"))
        db.session.commit()
        assert campaigns.resume_campaign(campaign)
        db.session.commit()
        finished = run_worker(copy, "--burst", "--log-level", "WARNING")
        assert finished.returncode == 0, finished.stderr

        received = fault_smtp.by_recipient()
        assert sorted(received) == emails
        assert all(len(copies) == 1 for copies in received.values())
        _closed(None)
    shutil.rmtree(tmp_path / "original", ignore_errors=True)
