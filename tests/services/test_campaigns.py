"""Campaigns: audience arithmetic, the checks before launch, the ledger a launch writes."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from campaign.extensions import db
from campaign.models import (
    AuditEvent,
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Statement,
    Suppression,
)
from campaign.queue import get_queue
from campaign.services.contacts import lists
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec, CampaignError
from campaign.services.statements import statements
from tests.factories import ContactListFactory, StatementFactory

BODY = "{{ salutation }}\n\nOur letter.\n\n{{ closing }}\n"


def _suppress(email: str) -> None:
    db.session.add(Suppression(email_key=email.lower(), email=email, reason="unsubscribed"))
    db.session.flush()


def _deliveries(campaign: Campaign) -> list[Delivery]:
    return list(
        db.session.scalars(
            select(Delivery).where(Delivery.campaign_id == campaign.id).order_by(Delivery.email)
        )
    )


def test_audience_is_the_union_of_includes_minus_the_excludes(app: Flask) -> None:
    press = ContactListFactory(name="Press", contacts=["a@example.org", "b@example.org"])
    diplomats = ContactListFactory(
        name="Diplomats", contacts=["b@example.org", "c@example.org", "d@example.org"]
    )
    partners = ContactListFactory(name="Partners", contacts=["d@example.org"])
    spec = AudienceSpec((f"list:{press.id}", f"list:{diplomats.id}"), (f"list:{partners.id}",))
    emails = sorted(c.email for c in db.session.scalars(campaigns.audience_query(spec)))
    assert emails == ["a@example.org", "b@example.org", "c@example.org"]
    _suppress("c@example.org")
    count = campaigns.count_audience(spec)
    assert (count.total, count.suppressed, count.sendable) == (3, 1, 2)


def test_a_deleted_list_in_the_audience_is_named(app: Flask) -> None:
    with pytest.raises(CampaignError, match="'list:999' is not a list or segment") as error:
        campaigns.count_audience(AudienceSpec(("list:999",)))
    assert error.value.field == "include"


def test_a_header_injection_in_from_is_refused_naming_the_field(app: Flask) -> None:
    press = ContactListFactory(name="Press", contacts=["a@example.org"])
    with pytest.raises(CampaignError) as error:
        campaigns.create_campaign(
            StatementFactory(body=BODY),
            audience=AudienceSpec((f"list:{press.id}",)),
            from_address="Us <us@example.org>\r\nBcc: spy@evil.test",
        )
    assert error.value.field == "from_address"
    with pytest.raises(CampaignError, match="Reply-To") as error:
        campaigns.create_campaign(
            StatementFactory(body=BODY),
            audience=AudienceSpec((f"list:{press.id}",)),
            reply_to="not an address",
        )
    assert error.value.field == "reply_to"


def test_empty_and_fully_suppressed_audiences_cannot_launch(app: Flask) -> None:
    empty = lists.create_list("Empty")
    campaign = campaigns.create_campaign(
        StatementFactory(body=BODY), audience=AudienceSpec((f"list:{empty.id}",))
    )
    assert "hold no contacts" in " ".join(campaigns.check_campaign(campaign).errors)
    with pytest.raises(CampaignError, match="hold no contacts"):
        campaigns.launch_campaign(campaign)

    press = ContactListFactory(name="Press", contacts=["a@example.org", "b@example.org"])
    _suppress("a@example.org")
    _suppress("b@example.org")
    campaign = campaigns.create_campaign(
        StatementFactory(body=BODY), audience=AudienceSpec((f"list:{press.id}",))
    )
    assert (
        "all 2 contacts are on the suppression list" in campaigns.check_campaign(campaign).errors[0]
    )
    with pytest.raises(CampaignError, match="suppression list"):
        campaigns.launch_campaign(campaign)
    assert campaign.status == CampaignStatus.DRAFT


def test_a_from_domain_other_than_the_accounts_is_a_warning(app: Flask) -> None:
    app.config["MAIL_USERNAME"] = "relay@ngo.example"
    press = ContactListFactory(name="Press", contacts=["a@example.org"])
    campaign = campaigns.create_campaign(
        StatementFactory(body=BODY),
        audience=AudienceSpec((f"list:{press.id}",)),
        from_address="Us <us@other.example>",
    )
    check = campaigns.check_campaign(campaign)
    assert check.errors == []
    assert "other.example" in check.warnings[0] and "ngo.example" in check.warnings[0]


def test_launch_writes_one_row_per_recipient_and_queues_after_commit(app: Flask) -> None:
    press = ContactListFactory(
        name="Press", contacts=["a@example.org", "b@example.org", "c@example.org"]
    )
    _suppress("b@example.org")
    campaign = campaigns.create_campaign(
        StatementFactory(body=BODY), audience=AudienceSpec((f"list:{press.id}",))
    )
    db.session.commit()
    queue = get_queue()
    queue.empty()

    assert campaigns.launch_campaign(campaign) is True
    assert queue.count == 0, "nothing is queued before the launch is committed"
    db.session.commit()
    assert queue.count >= 1
    assert queue.jobs[0].func_name == "workers.jobs.send_batch"
    assert list(queue.jobs[0].args) == [campaign.id]

    rows = _deliveries(campaign)
    assert [(r.email, r.status) for r in rows] == [
        ("a@example.org", DeliveryStatus.QUEUED),
        ("b@example.org", DeliveryStatus.SUPPRESSED),
        ("c@example.org", DeliveryStatus.QUEUED),
    ]
    assert len({r.message_id for r in rows}) == 3
    assert all(r.message_id.startswith("<") and "@" in r.message_id for r in rows)
    assert len({r.unsubscribe_token for r in rows}) == 3
    assert campaign.status == CampaignStatus.SENDING
    assert campaign.statement_version_id is not None
    assert campaigns.status_counts(campaign.id)["queued"] == 2


def test_launching_twice_writes_nothing_more(app: Flask) -> None:
    press = ContactListFactory(name="Press", contacts=["a@example.org", "b@example.org"])
    campaign = campaigns.create_campaign(
        StatementFactory(body=BODY), audience=AudienceSpec((f"list:{press.id}",))
    )
    assert campaigns.launch_campaign(campaign) is True
    db.session.commit()
    assert campaigns.launch_campaign(campaign) is False
    db.session.commit()
    assert len(_deliveries(campaign)) == 2


def test_a_rolled_back_launch_leaves_no_rows_and_no_jobs(app: Flask) -> None:
    press = ContactListFactory(name="Press", contacts=["a@example.org"])
    campaign = campaigns.create_campaign(
        StatementFactory(body=BODY), audience=AudienceSpec((f"list:{press.id}",))
    )
    db.session.commit()
    queue = get_queue()
    queue.empty()
    campaigns.launch_campaign(campaign)
    db.session.rollback()
    assert queue.count == 0
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_presend_errors_need_an_override_which_the_audit_log_records(app: Flask) -> None:
    # The launch counts them itself (BODY names no signer: each letter has an error); no
    # caller passes the count, so none can pass a wrong one (decision 0056).
    press = ContactListFactory(
        name="Press", contacts=["a@example.org", "b@example.org", "c@example.org"]
    )
    campaign = campaigns.create_campaign(
        StatementFactory(body=BODY), audience=AudienceSpec((f"list:{press.id}",))
    )
    with pytest.raises(CampaignError, match="errors for 3 contacts"):
        campaigns.check_and_launch(campaign)
    with pytest.raises(CampaignError, match="say why"):
        campaigns.check_and_launch(campaign, override=True)
    assert campaigns.check_and_launch(campaign, override=True, override_reason="asked today")
    db.session.commit()
    assert campaign.is_presend_overridden
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "campaign.launch"))
    assert event is not None and event.detail["override"] is True
    assert event.detail["presend_errors"] == 3


def test_the_launched_version_is_frozen_against_later_edits(app: Flask) -> None:
    statement = StatementFactory(body=BODY)
    press = ContactListFactory(name="Press", contacts=["a@example.org"])
    campaign = campaigns.create_campaign(statement, audience=AudienceSpec((f"list:{press.id}",)))
    campaigns.launch_campaign(campaign)
    frozen = campaign.statement_version_id
    statements.set_text(statement, language="en", subject="Changed", body=BODY)
    db.session.commit()
    assert campaign.statement_version_id == frozen
    assert campaign.statement_version.snapshot["texts"]["en"]["subject"] == "S"


def test_pause_resume_and_cancel(app: Flask) -> None:
    press = ContactListFactory(name="Press", contacts=["a@example.org", "b@example.org"])
    campaign = campaigns.create_campaign(
        StatementFactory(body=BODY), audience=AudienceSpec((f"list:{press.id}",))
    )
    campaigns.launch_campaign(campaign)
    db.session.commit()
    assert campaigns.resume_campaign(campaign) is False, "a sending campaign is not paused"
    assert campaigns.pause_campaign(campaign, reason="checking a name") is True
    assert campaign.status == CampaignStatus.PAUSED
    assert campaign.status_reason == "checking a name"
    assert campaigns.pause_campaign(campaign) is False
    queue = get_queue()
    db.session.commit()
    queue.empty()
    assert campaigns.resume_campaign(campaign) is True
    db.session.commit()
    assert campaign.status == CampaignStatus.SENDING
    assert queue.count >= 1, "resuming queues the remaining work"

    first = _deliveries(campaign)[0]
    first.status = DeliveryStatus.SENT.value
    db.session.flush()
    assert campaigns.cancel_campaign(campaign) is True
    db.session.commit()
    statuses = [d.status for d in _deliveries(campaign)]
    assert statuses == [DeliveryStatus.SENT, DeliveryStatus.CANCELLED]
    assert campaign.status == CampaignStatus.CANCELLED
    with pytest.raises(CampaignError, match="only a draft can be changed"):
        campaigns.update_campaign(
            campaign,
            name="x",
            audience=AudienceSpec((f"list:{press.id}",)),
            from_address="us@example.org",
            reply_to="",
            smtp_account=None,
            is_pdf_attached=False,
            has_list_unsubscribe=True,
            is_open_tracking=False,
            is_click_tracking=False,
        )


def test_a_statement_a_campaign_uses_cannot_be_deleted(app: Flask) -> None:
    statement = StatementFactory(body=BODY)
    press = ContactListFactory(name="Press", contacts=["a@example.org"])
    campaign = campaigns.create_campaign(statement, audience=AudienceSpec((f"list:{press.id}",)))
    campaigns.launch_campaign(campaign)
    db.session.commit()
    with pytest.raises(
        statements.StatementError, match=r"campaigns use it \(#\d+ “Joint letter” \(Sending\)\)"
    ):
        statements.delete_statement(statement)
    db.session.rollback()
    assert db.session.get(Statement, statement.id) is not None

    unused = statements.create_statement("Unused", language="en", subject="S", body=BODY)
    statements.delete_statement(unused)
    db.session.commit()
    assert db.session.get(Statement, unused.id) is None


def test_a_launch_that_finds_the_campaign_launched_meanwhile_does_nothing(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    press = ContactListFactory(name="Press", contacts=["a@example.org", "b@example.org"])
    campaign = campaigns.create_campaign(
        StatementFactory(body=BODY), audience=AudienceSpec((f"list:{press.id}",))
    )
    db.session.commit()
    real_check = campaigns.check_campaign
    is_sqlite = db.engine.dialect.name == "sqlite"

    def launched_by_someone_else(now: Campaign, **options: Any) -> campaigns.CampaignCheck:
        # Another request (a double click) launches while this one runs its checks. SQLite
        # ignores FOR UPDATE, so there it really gets in between; PostgreSQL's row lock
        # makes it wait, so there it comes first.
        with db.engine.connect() as other:
            other.execute(update(Campaign).where(Campaign.id == now.id).values(status="sending"))
            other.commit()
        return real_check(now, **options)

    if is_sqlite:
        monkeypatch.setattr(campaigns, "check_campaign", launched_by_someone_else)
    else:
        launched_by_someone_else(campaign)
    assert campaigns.launch_campaign(campaign) is False
    db.session.commit()
    assert _deliveries(campaign) == []


@pytest.mark.parametrize(
    ("public_url", "debug", "refusal"),
    [
        ("", False, "CAMPAIGN_PUBLIC_URL is not set"),
        ("", True, "CAMPAIGN_PUBLIC_URL is not set"),
        ("http://campaign.example.org", False, "must start with https://"),
        ("campaign.example.org", False, "must start with https://"),
        ("https://", False, "names no host"),
        ("http://127.0.0.1:5000", True, None),  # `campaign dev`: debug over plain HTTP
        ("https://campaign.example.org/", False, None),
    ],
)
@pytest.mark.parametrize("tracking", ["opens", "clicks"])
def test_tracking_needs_the_public_address_letters_can_link_to(
    app: Flask, public_url: str, debug: bool, refusal: str | None, tracking: str
) -> None:
    app.config.update(PUBLIC_URL=public_url, DEBUG=debug)
    press = ContactListFactory(name="Press", contacts=["a@example.org"])
    campaign = campaigns.create_campaign(
        StatementFactory(body=BODY),
        audience=AudienceSpec((f"list:{press.id}",)),
        is_open_tracking=tracking == "opens",
        is_click_tracking=tracking == "clicks",
    )
    errors = campaigns.check_campaign(campaign).errors
    if refusal is None:
        assert errors == []
        assert campaigns.launch_campaign(campaign)
        return
    assert len(errors) == 1 and errors[0].startswith("Tracking: ") and refusal in errors[0]
    with pytest.raises(CampaignError, match=refusal):
        campaigns.launch_campaign(campaign)
    assert campaign.status == CampaignStatus.DRAFT
    assert _deliveries(campaign) == []


def test_a_campaign_without_tracking_or_unsubscribe_needs_no_public_address(app: Flask) -> None:
    app.config.update(PUBLIC_URL="", DEBUG=False)
    press = ContactListFactory(name="Press", contacts=["a@example.org"])
    campaign = campaigns.create_campaign(
        StatementFactory(body=BODY),
        audience=AudienceSpec((f"list:{press.id}",)),
        has_list_unsubscribe=False,
    )
    assert campaigns.check_campaign(campaign).errors == []


def test_without_a_public_address_unsubscribe_links_would_not_work_and_the_launch_refuses(
    app: Flask,
) -> None:
    # Outside debug an error (decision 0037), in `campaign dev` a warning.
    press = ContactListFactory(name="Press", contacts=["a@example.org"])
    campaign = campaigns.create_campaign(
        StatementFactory(body=BODY), audience=AudienceSpec((f"list:{press.id}",))
    )
    app.config["PUBLIC_URL"] = ""
    assert any(
        "CAMPAIGN_PUBLIC_URL is not set" in e for e in campaigns.check_campaign(campaign).errors
    )

    app.config["PUBLIC_URL"] = "https://campaign.ngo.example"
    assert not any("Unsubscribe" in e for e in campaigns.check_campaign(campaign).errors)

    app.config["PUBLIC_URL"] = ""
    campaign.has_list_unsubscribe = False
    assert not any("Unsubscribe" in e for e in campaigns.check_campaign(campaign).errors)
