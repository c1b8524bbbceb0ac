"""The restore hold's gaps found in review (decision 0087): the hold stands from the first
row loaded, a failed restore says what state it left, and a held copy sends no notice,
webhook, reminder or follow-up, polls no mailbox and resumes nothing until an admin
confirms; the schedules it turned off stay off until a person turns each on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from campaign.extensions import db
from campaign.models import (
    AuditEvent,
    Campaign,
    CampaignStatus,
    Contact,
    ImapMailbox,
    Role,
    User,
)
from campaign.models.schedule import Schedule, ScheduleKind
from campaign.queue import get_queue
from campaign.scheduling.tick import tick
from campaign.services.accounts import password_reset, two_factor
from campaign.services.backups import hold as holds
from campaign.services.backups import restore
from campaign.services.backups.archive import BackupError, write_backup
from campaign.services.backups.restore import RestoreError, restore_backup
from campaign.services.replies import mailboxes
from campaign.services.sending import batches as sending
from campaign.services.sending.notices import SENT_WHILE_HELD, queue_notice, send_notice
from campaign.services.sign_on import pages as sign_on
from campaign.services.sign_on.invitations import REMINDER, InvitationError, invite
from campaign.services.webhooks import delivery as webhook_delivery
from campaign.services.webhooks.events import record_webhook_event
from tests import servers
from tests.api.helpers import bearer, new_key
from tests.backups.helpers import close, installation, make_identity
from tests.conftest import make_user, sign_in
from tests.factories import CampaignFactory, ContactFactory
from tests.webhooks.helpers import add_endpoint, allow_hosts, deliveries

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

MADE = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: Any) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": fault_smtp.host,
        "MAIL_PORT": fault_smtp.port,
        "MAIL_DEFAULT_SENDER": "Human Rights Office <office@example.org>",
        "PUBLIC_URL": "https://campaign.example.org",
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


def _hold() -> None:
    holds.place_restore_hold(archive_created_at=MADE, archive_name="daily.age")
    db.session.commit()


# --- The restore: the hold from the first row, and failures told as they are -------------


@pytest.fixture
def archive(app: Flask, tmp_path: Path) -> tuple[Path, Path, int]:
    """A backup of an installation with a campaign mid-send: (archive, identity, its id)."""
    campaign: Any = CampaignFactory(
        name="Free the defenders", recipients=["envoy1@embassy.example"], launched=True
    )
    db.session.commit()
    identity, public = make_identity(tmp_path)
    path = tmp_path / "mid-send.age"
    write_backup(path, [public])
    return path, identity, int(campaign.id)


@pytest.fixture
def target(
    tmp_path: Path, sqlite_template: Path, redis_server: servers.RedisServer
) -> Iterator[Flask]:
    import shutil

    database = tmp_path / "copy" / "restored.sqlite3"
    database.parent.mkdir(parents=True)
    shutil.copyfile(sqlite_template, database)
    made = installation(tmp_path / "copy", redis_server.url, f"sqlite:///{database}")
    yield made
    close(made)


def test_a_restore_stopped_right_after_the_load_leaves_the_copy_held(
    archive: tuple[Path, Path, int],
    target: Flask,
    fault_smtp: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, identity, campaign_id = archive

    def stopped(**_: Any) -> None:
        raise KeyboardInterrupt  # Ctrl-C (or a kill) between the load and the pause

    with target.app_context():
        target.config.update(MAIL_SERVER=fault_smtp.host, MAIL_PORT=fault_smtp.port)
        monkeypatch.setattr(restore.holds, "place_restore_hold", stopped)
        with pytest.raises(KeyboardInterrupt):
            restore_backup(path, identity)
        monkeypatch.undo()
        db.session.remove()
        # The rows are in and the hold with them: a send job of the original sends nothing.
        assert holds.sending_is_held()
        hold = holds.restore_hold()
        assert hold is not None and not hold.finished and hold.archive_name == "mid-send.age"
        campaign = db.session.get(Campaign, campaign_id)
        assert campaign is not None and campaign.status == CampaignStatus.SENDING.value

        # The first confirmation finishes what the restore did not, and does not release.
        admin = make_user(Role.ADMIN, "admin@example.org")
        with pytest.raises(holds.HoldNotFinished):
            holds.release_restore_hold(admin)
        db.session.commit()
        assert campaign.status == CampaignStatus.PAUSED.value
        hold = holds.restore_hold()
        assert hold is not None and hold.finished and hold.paused_campaigns == [campaign_id]
        assert holds.sending_is_held()
        # Set sending again by hand: the original's send job still sends nothing.
        campaign.status = CampaignStatus.SENDING.value
        db.session.commit()
        result = sending.send_batch(campaign_id, worker="test", commit=db.session.commit)
        assert result.claimed == 0 and fault_smtp.by_recipient() == {}
        assert holds.release_restore_hold(admin)


def test_a_restore_of_a_held_copy_keeps_what_the_earlier_hold_stopped(
    app: Flask, tmp_path: Path, target: Flask
) -> None:
    campaign: Any = CampaignFactory(name="Half sent", launched=True)
    follow_up = Schedule(
        kind=ScheduleKind.FOLLOW_UP.value,
        name="Follow-up 1",
        campaign_id=campaign.id,
        next_run_at=MADE + timedelta(days=2),
        rule={},
        is_enabled=True,
    )
    db.session.add(follow_up)
    db.session.commit()
    _hold()  # the copy this backup is taken from was itself restored, and still held
    ids = (int(campaign.id), int(follow_up.id))
    identity, public = make_identity(tmp_path)
    path = tmp_path / "of-held.age"
    write_backup(path, [public])

    with target.app_context():
        restore_backup(path, identity)
        db.session.remove()
        hold = holds.restore_hold()
        assert hold is not None and hold.finished and hold.archive_name == "of-held.age"
        # Still listed on the hold page: paused, and to be turned on again by a person.
        assert (hold.paused_campaigns, hold.disabled_schedules) == ([ids[0]], [ids[1]])
        admin = make_user(Role.ADMIN, "admin@example.org")
        sign_in(client := target.test_client(), admin)
        page = client.get("/privacy/restore/").get_data(as_text=True)
        assert "Half sent" in page and "Follow-up 1" in page


def test_a_failed_forward_migration_leaves_the_copy_held_and_says_what_to_do(
    archive: tuple[Path, Path, int], target: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, identity, _campaign_id = archive
    head, known = restore.code_revisions()
    monkeypatch.setattr(restore, "code_revisions", lambda: ("9999_later", {*known, "9999_later"}))

    def migrate(revision: str) -> None:
        raise RuntimeError(f"no such revision {revision}")

    monkeypatch.setattr(restore, "_migrate", migrate)
    with target.app_context():
        with pytest.raises(RestoreError) as failed:
            restore_backup(path, identity)
        message = str(failed.value)
        assert "sending is held" in message and "run campaign db upgrade" in message
        assert f"from {head} to this version's 9999_later" in message
        assert "RuntimeError" not in message
        db.session.remove()
        assert holds.sending_is_held()


def test_a_failed_load_with_replace_says_the_database_is_empty_and_names_the_table(
    archive: tuple[Path, Path, int], target: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, identity, _campaign_id = archive
    with target.app_context():
        ContactFactory(email="already.here@example.org")
        db.session.commit()

        def full_disk(self: Any, manifest: Any) -> int:
            raise OperationalError("INSERT", {}, Exception("database or disk is full"))

        monkeypatch.setattr(restore._Loader, "complete", full_disk)
        with pytest.raises(RestoreError) as failed:
            restore_backup(path, identity, replace=True)
        message = str(failed.value)
        assert "the database is now empty" in message and "restore again" in message
        assert "could not be loaded (the database refused or stopped the write" in message
        assert "the rows of table " in message and "OperationalError" not in message
        db.session.remove()
        assert db.session.scalars(select(Contact.email)).all() == []


def test_a_failure_after_the_rows_names_its_step_not_a_table(
    archive: tuple[Path, Path, int], target: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, identity, _campaign_id = archive

    def full_disk(connection: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("database or disk is full"))

    monkeypatch.setattr(restore, "sync_search_index", full_disk)
    with target.app_context(), pytest.raises(RestoreError) as failed:
        restore_backup(path, identity)
    message = str(failed.value)
    assert "the rebuild of the contacts' search index failed" in message
    assert "the database was left as it was before the load" in message
    assert "the rows of table" not in message


def test_a_killed_restores_staging_folder_is_removed_by_the_next_restore(
    archive: tuple[Path, Path, int], target: Flask
) -> None:
    path, identity, _campaign_id = archive
    instance = Path(target.instance_path)
    left = instance / ".restore-0123456789ab"
    left.mkdir(parents=True, mode=0o700)
    (left / "secret_key").write_text("the decrypted key of a killed restore\n")
    with target.app_context():
        restore_backup(path, identity)
    assert not left.exists()
    assert not [p for p in instance.iterdir() if p.name.startswith(".restore-")]


def test_files_that_cannot_be_put_in_place_are_kept_and_named(
    app: Flask, archive: tuple[Path, Path, int], target: Flask, tmp_path: Path
) -> None:
    source = Path(app.instance_path) / "attachments" / "3"
    source.mkdir(parents=True)
    (source / "annex.pdf").write_bytes(b"%PDF-1.4 annex")
    identity, public = make_identity(tmp_path)
    path = tmp_path / "with-files.age"
    write_backup(path, [public])
    instance = Path(target.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    (instance / "attachments").write_text("a file where the folder goes")
    with target.app_context():
        with pytest.raises(RestoreError) as failed:
            restore_backup(path, identity)
        db.session.remove()
        assert holds.sending_is_held()
    message = str(failed.value)
    assert "restored (sending held)" in message and "they are kept in" in message
    kept = [p for p in instance.iterdir() if p.name.startswith(".restore-")]
    assert len(kept) == 1 and str(kept[0]) in message
    assert (kept[0] / "attachments" / "3" / "annex.pdf").read_bytes() == b"%PDF-1.4 annex"


# --- Archives: two backups to one name, exports left out -----------------------------------


def test_a_second_backup_to_the_same_name_is_refused_and_leaves_the_first_alone(
    app: Flask, tmp_path: Path
) -> None:
    _identity, public = make_identity(tmp_path)
    path = tmp_path / "nightly.age"
    partial = tmp_path / "nightly.age.partial"
    partial.write_bytes(b"the first backup, being written")
    with pytest.raises(BackupError) as refused:
        write_backup(path, [public])
    assert "is already being written by another backup" in str(refused.value)
    assert partial.read_bytes() == b"the first backup, being written"
    assert not path.exists()


def test_access_request_exports_are_not_backed_up(app: Flask, tmp_path: Path) -> None:
    exports = Path(app.instance_path) / "private" / "exports"
    exports.mkdir(parents=True)
    (exports / "export-1.zip").write_bytes(b"PK a person's data")
    _identity, public = make_identity(tmp_path)
    manifest = write_backup(tmp_path / "b.age", [public])
    assert not [f for f in manifest.files if f["path"].startswith("private/exports")]


# --- What a held copy does not send ---------------------------------------------------------


def _sent_notices() -> int:
    sent = 0
    queue = get_queue()
    for job in queue.get_jobs():
        if job.func_name == "workers.jobs.send_notice":
            sent += send_notice(*job.args, commit=db.session.commit)
        queue.remove(job)
    return sent


def test_a_held_copy_sends_no_sign_on_notice_but_still_password_resets(
    app: Flask, fault_smtp: Any
) -> None:
    from tests.sign_on.test_invitations import (
        deadline_in,
        joint_statement,
        partner_list,
        set_deadline,
    )

    page = sign_on.open_sign_on(joint_statement())
    set_deadline(page, deadline_in(20), 3)
    audience = partner_list("Partners", {"email": "ngo@partner.example", "organisation": "P"})
    invite(page, audience)  # the original invited: the job waits in Redis
    db.session.commit()
    _hold()

    assert _sent_notices() == 0  # the invitation job of the original
    from campaign.models import SignOnInvitation

    invited = db.session.scalars(select(SignOnInvitation)).one()
    queue_notice(REMINDER, invited.id)
    db.session.commit()
    assert _sent_notices() == 0
    more = partner_list("More", {"email": "other@partner.example", "organisation": "O"})
    with pytest.raises(InvitationError) as refused:
        invite(page, more)
    assert "restored from a backup" in str(refused.value)
    assert fault_smtp.by_recipient() == {}

    # Someone locked out of the copy can still reset their password (and 2FA notices go).
    assert {
        password_reset.KIND,
        two_factor.RESET_NOTICE,
        two_factor.GUESSING_NOTICE,
    } == SENT_WHILE_HELD
    make_user(Role.ADMIN, "admin@example.org")
    db.session.commit()
    password_reset.request_reset("admin@example.org")
    db.session.commit()
    assert _sent_notices() == 1
    assert list(fault_smtp.by_recipient()) == ["admin@example.org"]


def test_a_held_copy_takes_no_signature_until_released(app: Flask, fault_smtp: Any) -> None:
    from campaign.models import Signature
    from tests.sign_on.test_invitations import joint_statement
    from tests.sign_on.test_signing import individual_form

    page = sign_on.open_sign_on(joint_statement())
    db.session.commit()
    _hold()
    client = app.test_client()
    paused = "Signing is paused for a while; please try again later."

    assert paused in client.get(f"/sign/{page.token}").get_data(as_text=True)
    refused = client.post(f"/sign/{page.token}", data=individual_form())
    assert refused.status_code == 422
    assert paused in refused.get_data(as_text=True)
    assert db.session.scalar(select(Signature.id)) is None
    assert _sent_notices() == 0

    holds.release_restore_hold(make_user(Role.ADMIN, "admin@example.org"))
    db.session.commit()
    assert client.post(f"/sign/{page.token}", data=individual_form()).status_code == 200
    assert _sent_notices() == 1
    assert list(fault_smtp.by_recipient()) == ["dilnoza@example.org"]


def test_a_held_copy_posts_no_webhook_and_keeps_the_deliveries_pending(app: Flask) -> None:
    allow_hosts("127.0.0.1")
    endpoint, _secret = add_endpoint("https://127.0.0.1:9/hook")  # nobody listens there
    record_webhook_event("campaign.finished", {"campaign_id": 7})
    db.session.commit()
    _hold()

    assert webhook_delivery.requeue_due() == 0
    report = webhook_delivery.deliver_webhooks(endpoint.id, commit=db.session.commit)
    assert (report.delivered, report.retrying, report.failed) == (0, 0, 0)
    assert [(d.status, d.attempts) for d in deliveries()] == [("pending", 0)]


def test_a_held_copy_polls_no_mailbox(app: Flask) -> None:
    db.session.add(
        ImapMailbox(
            name="Replies",
            host="imap.example.org",
            port=993,
            security="ssl",
            username="office",
            password_encrypted="",
            folder="INBOX",
            processed_folder="Processed",
            is_enabled=True,
        )
    )
    db.session.commit()
    assert [m.name for m in mailboxes.due_mailboxes()] == ["Replies"]
    _hold()
    assert mailboxes.due_mailboxes() == []


def test_resume_while_held_is_refused_by_the_cli_and_the_api(app: Flask) -> None:
    campaign: Any = CampaignFactory(name="Half sent", launched=True)
    db.session.commit()
    _hold()
    assert campaign.status == CampaignStatus.PAUSED.value

    result = app.test_cli_runner().invoke(args=["resume", str(campaign.id)])
    assert result.exit_code == 1
    assert "not resumed: this installation was restored from a backup" in result.output

    token, _key = new_key(Role.SENDER)
    answer = app.test_client().post(
        f"/api/v1/campaigns/{campaign.id}/resume", headers=bearer(token)
    )
    assert answer.status_code == 409
    assert "restored from a backup" in answer.get_data(as_text=True)
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.PAUSED.value


# --- Schedules: off with the hold, on again by a person ------------------------------------


def test_schedules_the_hold_turned_off_stay_off_after_the_release_until_a_person_turns_each_on(
    app: Flask,
) -> None:
    finished: Any = CampaignFactory(name="Sent last month", launched=True)
    finished.status = CampaignStatus.FINISHED.value
    due = MADE + timedelta(days=2)  # due after the backup was made: the copy missed it
    follow_up = Schedule(
        kind=ScheduleKind.FOLLOW_UP.value,
        name="Follow-up 1",
        campaign_id=finished.id,
        next_run_at=due,
        rule={},
        is_enabled=True,
    )
    yearly = Schedule(
        kind=ScheduleKind.YEARLY_CAMPAIGN.value,
        name="26 June",
        campaign_id=finished.id,
        next_run_at=datetime(2027, 6, 26, 7, 0, tzinfo=UTC),
        rule={"month": 6, "day": 26, "time": "09:00"},
        is_enabled=True,
    )
    db.session.add_all([follow_up, yearly])
    db.session.commit()

    _hold()
    assert not follow_up.is_enabled and not yearly.is_enabled
    admin = make_user(Role.ADMIN, "admin@example.org")
    assert holds.release_restore_hold(admin)
    db.session.commit()
    # Released: nothing fires by itself, the follow-up due since the backup included.
    assert tick(due + timedelta(minutes=1)).lines == []

    client = app.test_client()
    sign_in(client, admin)
    page = client.get("/privacy/restore/").get_data(as_text=True)
    assert 'id="schedules-off"' in page and "Follow-up 1" in page and "26 June" in page
    assert "due since the backup" in page
    assert f"/campaigns/{finished.id}/schedule/" in page
    assert "confirming does not turn them on" in page

    page = client.post(
        f"/privacy/restore/schedules/{yearly.id}/on", follow_redirects=True
    ).get_data(as_text=True)
    assert "“26 June” is on again." in page
    db.session.refresh(yearly)
    db.session.refresh(follow_up)
    assert yearly.is_enabled and not follow_up.is_enabled
    turned: AuditEvent | None = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "backup.schedule_on")
    )
    assert turned is not None and turned.actor_id == admin.id
    assert 'id="schedules-off"' in page and "26 June" not in page.split('id="schedules-off"')[1]


def test_the_hold_page_says_what_still_goes_and_what_stops(app: Flask) -> None:
    _hold()
    admin: User = make_user(Role.ADMIN, "admin@example.org")
    client = app.test_client()
    sign_in(client, admin)
    page = client.get("/privacy/restore/").get_data(as_text=True)
    assert "A letter a person sends by hand" in page
    assert "no retention removal and no daily backup" in page
    assert "take no signatures while sending is held" in page
