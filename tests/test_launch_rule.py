"""One launch rule (decision 0056): the page, `campaign send` and the scheduler launch through
`check_and_launch`, which runs the pre-send check itself and takes an override only with a
reason, kept in the audit log. A mailbox is audited whoever adds it; the tick's actions are
listed in one place, installed by create_app.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.config import PROJECT_ROOT
from campaign.extensions import db
from campaign.models import AuditEvent, Campaign, CampaignStatus, Delivery, Role
from campaign.models.schedule import ScheduleKind
from campaign.scheduling import tick
from campaign.services.contacts.trash import purge_after_tick
from campaign.services.replies import mailboxes
from campaign.services.schedules.advocacy_calendar import email_reminders
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import CampaignError, PresendRefused
from tests.factories import CampaignFactory
from tests.launching import confirm_launch

# The closing names nobody: every reader's letter has an error (no signatory, no name).
UNSIGNED = "{{ salutation }}\n\nOur letter.\n\n{{ closing }}\n"
SIGNED = UNSIGNED + "\nAnna Sample\n"


def _campaign(body: str = UNSIGNED, people: int = 2) -> Campaign:
    readers = [
        {"email": f"p{n}@example.org", "given_name": f"P{n}", "family_name": "Sample"}
        for n in range(people)
    ]
    return CampaignFactory(statement__body=body, recipients=readers, commit=True)


def _deliveries() -> int:
    return db.session.scalar(select(func.count()).select_from(Delivery)) or 0


def _events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# --- the service -------------------------------------------------------------------------------


def test_no_caller_passes_the_pre_send_figures_the_launch_counts_them_itself(app: Flask) -> None:
    for launch in (campaigns.launch_campaign, campaigns.check_and_launch):
        assert "presend_errors" not in inspect.signature(launch).parameters
    campaign = _campaign(people=2)

    with pytest.raises(PresendRefused, match="errors for 2 contacts") as refused:
        campaigns.check_and_launch(campaign)
    assert refused.value.report.contacts_with_errors == 2
    db.session.rollback()
    assert (campaign.status, _deliveries()) == (CampaignStatus.DRAFT, 0)


def test_an_override_needs_a_reason_which_the_audit_log_keeps(app: Flask) -> None:
    campaign = _campaign(people=3)
    for blank in ("", "   \n "):
        with pytest.raises(CampaignError, match="say why") as refused:
            campaigns.check_and_launch(campaign, override=True, override_reason=blank)
        assert refused.value.field == "override_reason"
        db.session.rollback()
    assert _deliveries() == 0

    assert campaigns.check_and_launch(
        campaign, override=True, override_reason="  the minister's\noffice asked "
    )
    db.session.commit()
    assert campaign.is_presend_overridden and _deliveries() == 3
    (override,) = _events("campaign.presend_override")
    assert override.detail == {"reason": "the minister's office asked", "contacts_with_errors": 3}
    (launch,) = _events("campaign.launch")
    assert launch.detail["presend_checked"] is True
    assert (launch.detail["presend_errors"], launch.detail["override"]) == (3, True)


def test_clean_letters_launch_without_an_override_and_record_none(app: Flask) -> None:
    campaign = _campaign(SIGNED)
    # An override asked for with no errors to override is not one.
    assert campaigns.check_and_launch(campaign, override=True)
    db.session.commit()
    assert not campaign.is_presend_overridden
    assert _events("campaign.presend_override") == []
    (launch,) = _events("campaign.launch")
    assert (launch.detail["presend_errors"], launch.detail["override"]) == (0, False)


def test_the_unchecked_launch_says_so_in_the_audit_log(app: Flask) -> None:
    # launch_campaign (tests, the demo, benchmarks) runs no pre-send check: it does not
    # pretend it found nothing.
    campaign = _campaign()
    assert campaigns.launch_campaign(campaign)
    db.session.commit()
    (launch,) = _events("campaign.launch")
    assert launch.detail["presend_checked"] is False
    assert not campaign.is_presend_overridden


# --- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [None, "", "  "])
def test_send_override_without_a_reason_is_refused_naming_the_option(
    app: Flask, reason: str | None
) -> None:
    campaign = _campaign()
    args = ["send", str(campaign.id), "--override"]
    if reason is not None:
        args += ["--reason", reason]

    result = app.test_cli_runner().invoke(args=args)

    assert result.exit_code == 2, result.output
    assert "--override needs --reason TEXT" in result.output
    assert _deliveries() == 0
    assert db.session.get(Campaign, campaign.id).status == CampaignStatus.DRAFT
    assert _events("campaign.launch") == []


def test_send_override_with_a_reason_launches_and_the_audit_log_keeps_it(app: Flask) -> None:
    campaign = _campaign(people=2)

    result = app.test_cli_runner().invoke(
        args=["send", str(campaign.id), "--override", "--reason", "annex signed on paper"]
    )

    assert result.exit_code == 0, result.output
    assert "launched with letters with errors for 2 contacts" in result.output
    assert db.session.get(Campaign, campaign.id).is_presend_overridden
    (override,) = _events("campaign.presend_override")
    assert override.detail == {"reason": "annex signed on paper", "contacts_with_errors": 2}
    assert override.remote_addr == "cli"


def test_send_reason_without_override_is_refused(app: Flask) -> None:
    campaign = _campaign(SIGNED)

    result = app.test_cli_runner().invoke(args=["send", str(campaign.id), "--reason", "why"])

    assert result.exit_code == 2, result.output
    assert "--reason is read only with --override" in result.output
    assert _deliveries() == 0


# --- the page ----------------------------------------------------------------------------------


def test_the_page_asks_for_the_reason_in_the_services_words(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    campaign = _campaign(people=2)
    login(Role.SENDER)

    response = confirm_launch(client, campaign.id, override="1", override_reason=" ")

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Override: say why the campaign is launched despite the errors." in page
    assert "Not launched:" not in page
    assert _deliveries() == 0

    refused = confirm_launch(client, campaign.id)
    assert refused.status_code == 422
    assert "Not launched: the pre-send check found letters with errors for 2 contacts" in (
        refused.get_data(as_text=True)
    )

    launched = confirm_launch(client, campaign.id, override="1", override_reason="annex")
    assert launched.status_code == 200
    assert _deliveries() == 2
    (override,) = _events("campaign.presend_override")
    assert override.detail == {"reason": "annex", "contacts_with_errors": 2}


# --- a mailbox added from the command line is audited as one added on the page -----------------


def test_add_mailbox_from_the_command_line_is_audited(app: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=[
            *("add-mailbox", "replies", "--host", "imap.example.org", "--user", "office"),
            *("--security", "starttls", "--port", "143", "--password-stdin"),
        ],
        input="s3cret\n",
    )

    assert result.exit_code == 0, result.output
    mailbox = mailboxes.find_mailbox("replies")
    assert mailbox is not None
    (event,) = _events("mailbox.create")
    assert (event.target_type, event.target_id, event.remote_addr) == (
        "imap_mailbox",
        str(mailbox.id),
        "cli",
    )
    assert event.detail == {
        "name": "replies",
        "host": "imap.example.org",
        "port": 143,
        "security": "starttls",
        "username": "office",
        "folder": "INBOX",
        "processed_folder": "Processed",
        "password_changed": True,
    }
    assert "s3cret" not in str(event.detail)


# --- the tick's registry -----------------------------------------------------------------------


def test_create_app_installs_an_action_for_every_kind_of_schedule(app: Flask) -> None:
    registry = app.extensions[tick.EXTENSION]
    assert set(registry.kinds) == {kind.value for kind in ScheduleKind}
    assert registry.after_tick == (email_reminders, purge_after_tick)
    with app.app_context():
        assert tick.registry() is registry
    # What each kind needs besides its action.
    assert registry.kinds[ScheduleKind.FOLLOW_UP.value].late_ok
    assert registry.kinds[ScheduleKind.SEND_AT.value].on_missed is not None
    assert registry.kinds[ScheduleKind.YEARLY_CAMPAIGN.value].next_run is not None
    assert registry.kinds[ScheduleKind.REMINDER.value].next_run is not None


def test_importing_the_modules_of_the_actions_registers_nothing() -> None:
    # In a fresh interpreter: the tick module's state is the same before and after the
    # modules that own the actions are imported (no registration as a side effect).
    script = """
import campaign.scheduling.tick as tick

def state():
    return {
        name: repr(value)
        for name, value in vars(tick).items()
        if isinstance(value, (dict, list, set, tuple)) and not name.startswith("__")
    }

before = state()
import campaign.scheduling.actions
import campaign.services.contacts.trash
import campaign.services.schedules.advocacy_calendar
import campaign.services.sending.followups
import campaign.services.sign_on.invitations
after = state()
assert before == after, sorted(k for k in after if before.get(k) != after[k])
print("unchanged")
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "unchanged"
