"""Invitations to sign, the reminder before the deadline, and the notice after sending:
e-mailed by the notice job through a real SMTP server, each to the right people, once."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.models import (
    Campaign,
    ContactList,
    Delivery,
    DeliveryStatus,
    Role,
    Schedule,
    ScheduleKind,
    ScheduleRun,
    Signature,
    SignatureStatus,
    SignOn,
    SignOnInvitation,
    Statement,
)
from campaign.queue import get_queue
from campaign.scheduling.tick import tick
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.contacts.suppressions import suppress_address
from campaign.services.sending import batches as sending
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.sending.notices import send_notice
from campaign.services.sign_on import pages as sign_on
from campaign.services.sign_on.invitations import InvitationError, invite
from campaign.services.sign_on.pages import reminder_of
from campaign.services.statements import statements
from tests.conftest import make_user, sign_in
from tests.fault_smtp import FaultSmtpServer

PUBLIC = "https://campaign.example.org"


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": fault_smtp.host,
        "MAIL_PORT": fault_smtp.port,
        "MAIL_TIMEOUT": 10,  # no stall tested: a loaded 3-worker run can take > 1 s
        "MAIL_DEFAULT_SENDER": "Human Rights Office <office@example.org>",
        "PUBLIC_URL": PUBLIC,
        "TIMEZONE": "Europe/Paris",
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


def deliver_notices() -> int:
    """Run the queued notice jobs here, as the worker would; return how many e-mails went."""
    sent = 0
    queue = get_queue()
    for job in queue.get_jobs():
        if job.func_name == "workers.jobs.send_notice":
            sent += send_notice(*job.args, commit=db.session.commit)
        queue.remove(job)
    return sent


def received(server: FaultSmtpServer) -> list[tuple[str, EmailMessage]]:
    return [
        (rcpt, message_from_bytes(m.raw, policy=default_policy))  # type: ignore[misc]
        for m in server.messages
        for rcpt in m.rcpt_tos
    ]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def joint_statement() -> Statement:
    statement = statements.create_statement(
        "Free the Karakalpak defenders",
        language="en",
        subject="Free the defenders",
        body="{{ salutation }}\n\nRelease them.\n\n{{ closing }}\n\n{{ signatories }}\n",
    )
    statements.set_text(
        statement,
        language="fr",
        subject="Libérez les défenseurs",
        body="{{ salutation }}\n\nLibérez-les.\n\n{{ closing }}\n\n{{ signatories }}\n",
    )
    return statement


def partner_list(name: str, *contacts: dict[str, str]) -> str:
    contact_list = lists.create_list(name)
    lists.add_contacts(contact_list, [create_contact(c).id for c in contacts])
    return f"list:{contact_list.id}"


def deadline_in(days: int) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(
        hour=17, minute=0, second=0, microsecond=0
    )


def set_deadline(page: SignOn, deadline: datetime | None, reminder_days: int | None) -> None:
    sign_on.update_settings(
        page,
        is_open=True,
        deadline=deadline,
        shows_names=True,
        ordering="organisations_first",
        reminder_days=reminder_days,
        consent_text=sign_on.DEFAULT_CONSENT,
    )


def add_signature(page: SignOn, email: str, name: str, status: SignatureStatus) -> Signature:
    signature = Signature(
        sign_on_id=page.id,
        kind="organisation",
        name=name,
        publish_as="full",
        email=email,
        email_key=sign_on.email_key(email),
        name_key=sign_on.name_key(name),
        status=status.value,
    )
    db.session.add(signature)
    db.session.flush()
    return signature


def test_invitations_go_once_per_contact_in_their_language_and_skip_suppressed_addresses(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    statement = joint_statement()
    page = sign_on.open_sign_on(statement)
    set_deadline(page, deadline_in(20), None)
    audience = partner_list(
        "Partners",
        {"email": "ngo@partner.example", "organisation": "Partner NGO", "languages": "en"},
        {"email": "ong@partenaire.example", "organisation": "ONG", "languages": "fr"},
        {"email": "ru@partner.example", "organisation": "Russian-speaking NGO", "languages": "ru"},
        {"email": "gone@partner.example", "organisation": "Unsubscribed NGO"},
    )
    suppress_address("gone@partner.example", "unsubscribed")
    first = invite(page, audience)
    db.session.commit()
    assert (first.invited, first.already, first.suppressed) == (3, 0, 1)
    assert deliver_notices() == 3

    mails = dict(received(fault_smtp))
    assert set(mails) == {"ngo@partner.example", "ong@partenaire.example", "ru@partner.example"}
    link = f"{PUBLIC}/sign/{page.token}"
    english = mails["ngo@partner.example"]
    assert english["Subject"] == "Invitation to sign: Free the Karakalpak defenders"
    assert link in text_of(english) and "Signatures close on" in text_of(english)
    french = mails["ong@partenaire.example"]
    # French typography: a no-break space before the colon.
    assert french["Subject"] == "Invitation à signer\u00a0: Free the Karakalpak defenders"
    assert link in text_of(french) and "jusqu’au" in text_of(french)
    # The statement has no Russian text: the invitation is in English, not a language the
    # page cannot show.
    assert mails["ru@partner.example"]["Subject"].startswith("Invitation to sign")

    # The same list again, with one new member: only the newcomer is e-mailed.
    partners = db.session.get(ContactList, int(audience.split(":")[1]))
    newcomer = create_contact({"email": "new@partner.example", "organisation": "New NGO"})
    lists.add_contacts(partners, [newcomer.id])
    again = invite(page, audience)
    db.session.commit()
    assert (again.invited, again.already, again.suppressed) == (1, 3, 1)
    assert deliver_notices() == 1
    assert [rcpt for rcpt, _ in received(fault_smtp)].count("ngo@partner.example") == 1
    assert len(fault_smtp.messages) == 4
    # A notice job run twice (RQ may) sends nothing the second time.
    invitation = db.session.scalars(select(SignOnInvitation).order_by(SignOnInvitation.id)).first()
    assert invitation is not None and invitation.invited_at is not None
    assert send_notice("sign_on_invitation", invitation.id, commit=db.session.commit) == 0


def test_invitations_are_refused_in_words_for_a_closed_page_or_an_unknown_audience(
    app: Flask,
) -> None:
    page = sign_on.open_sign_on(joint_statement())
    with pytest.raises(InvitationError, match="not a list or segment"):
        invite(page, "list:999")
    page.is_open = False
    with pytest.raises(InvitationError, match="closed for signatures"):
        invite(page, "list:1")


def test_the_reminder_fires_once_through_tick_to_invitees_who_have_not_signed(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    page = sign_on.open_sign_on(joint_statement())
    deadline = deadline_in(20)
    set_deadline(page, deadline, 7)
    audience = partner_list(
        "Invitees",
        {"email": "signed@partner.example", "organisation": "Signed NGO"},
        {"email": "pending@partner.example", "organisation": "Half-signed NGO"},
        {"email": "silent@partner.example", "organisation": "Silent NGO", "languages": "fr"},
    )
    invite(page, audience)
    db.session.commit()
    deliver_notices()
    fault_smtp.reset()
    add_signature(page, "Signed@Partner.example", "Signed NGO", SignatureStatus.CONFIRMED)
    # Signed but never followed the confirmation link: it does not count, they are reminded.
    add_signature(page, "pending@partner.example", "Half NGO", SignatureStatus.UNCONFIRMED)
    db.session.commit()

    schedule = reminder_of(page)
    assert schedule is not None and schedule.kind == ScheduleKind.SIGN_ON_REMINDER
    due = schedule.next_run_at
    assert due is not None
    # 7 days before, at the deadline's time of day in the office's zone (Europe/Paris).
    paris = deadline.astimezone(schedule_zone(schedule))
    assert due.astimezone(schedule_zone(schedule)).time() == paris.time()
    assert (paris.date() - due.astimezone(schedule_zone(schedule)).date()).days == 7

    assert tick(due - timedelta(minutes=1)).lines == []
    [line] = tick(due).lines
    assert line.detail == "reminder e-mailed to 2 invitees who have not signed"
    assert deliver_notices() == 2
    assert tick(due + timedelta(minutes=1)).lines == []
    assert deliver_notices() == 0
    mails = dict(received(fault_smtp))
    assert set(mails) == {"pending@partner.example", "silent@partner.example"}
    assert mails["silent@partner.example"]["Subject"].startswith("Rappel\u00a0: signer")
    assert f"{PUBLIC}/sign/{page.token}" in text_of(mails["pending@partner.example"])

    # Moving the deadline moves the one schedule; those reminded are not reminded again.
    set_deadline(page, deadline + timedelta(days=3), 7)
    db.session.commit()
    moved = reminder_of(page)
    assert moved is not None and moved.id == schedule.id
    assert moved.next_run_at == due + timedelta(days=3)
    assert len(db.session.scalars(select(Schedule)).all()) == 1
    tick(due + timedelta(days=3))
    assert deliver_notices() == 0


def schedule_zone(schedule: Schedule) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(schedule.timezone)


def test_no_reminder_once_the_page_is_closed_and_none_without_a_deadline(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    page = sign_on.open_sign_on(joint_statement())
    set_deadline(page, deadline_in(20), 5)
    invite(page, partner_list("Few", {"email": "one@partner.example", "organisation": "One"}))
    db.session.commit()
    deliver_notices()
    fault_smtp.reset()
    schedule = reminder_of(page)
    assert schedule is not None and schedule.next_run_at is not None
    due = schedule.next_run_at
    # Closed by hand after the schedule was made (a direct change, not through the settings).
    page.is_open = False
    db.session.commit()
    [line] = tick(due).lines
    assert line.detail.startswith("nobody reminded: This statement is closed")
    assert deliver_notices() == 0 and fault_smtp.messages == []
    # Through the settings, no deadline means no reminder at all.
    page.is_open = True
    set_deadline(page, None, None)
    db.session.commit()
    assert reminder_of(page) is not None and not reminder_of(page).is_enabled  # type: ignore[union-attr]
    runs = db.session.scalars(select(ScheduleRun)).all()
    assert len(runs) == 1


def sent_all(campaign: Campaign) -> None:
    """Every letter of the campaign went; the reconciler's check marks it finished."""
    db.session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign.id, Delivery.status == DeliveryStatus.QUEUED.value)
        .values(status=DeliveryStatus.SENT.value, sent_at=datetime.now(UTC))
    )
    assert sending.finish_if_done(campaign.id)
    db.session.commit()


def test_signers_who_asked_are_told_once_when_the_letter_has_gone_with_the_pdf_and_no_addresses(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    statement = joint_statement()
    page = sign_on.open_sign_on(statement)

    def approve(email: str, name: str, *, wants_notice: bool, language: str = "en") -> Signature:
        signature = add_signature(page, email, name, SignatureStatus.APPROVED)
        signature.wants_notice = wants_notice
        signature.language = language
        signatory = statements.add_signatory(statement, sign_on.as_signatory_values(signature))
        signature.signatory_id = signatory.id
        db.session.flush()
        return signature

    asked = approve("asked@ngo.example", "Asking Association", wants_notice=True)
    quiet = approve("quiet@ngo.example", "Quiet Committee", wants_notice=False)
    french = approve("fr@ngo.example", "Ligue des droits", wants_notice=True, language="fr")
    audience = partner_list(
        "Recipients",
        {
            "email": "amb.fr@mfa.example",
            "position_title": "Ambassador",
            "organisation": "Embassy of France in Tashkent",
            "role_type": "ambassador",
        },
        {
            "email": "euco@consilium.example",
            "position_title": "President of the European Council",
            "organisation": "European Council",
        },
        {"email": "journalist@press.example", "risk_level": "high", "organisation": "Free Radio"},
        {"email": "stop@mfa.example", "position_title": "Minister"},
    )
    suppress_address("stop@mfa.example", "unsubscribed")
    campaign = campaigns.create_campaign(
        statement, audience=AudienceSpec((audience,)), from_address="office@example.org"
    )
    assert campaigns.launch_campaign(campaign)
    db.session.commit()
    assert deliver_notices() == 0  # launched is not sent: nobody is told yet
    sent_all(campaign)
    assert deliver_notices() == 2

    mails = dict(received(fault_smtp))
    assert set(mails) == {"asked@ngo.example", "fr@ngo.example"}
    notice = mails["asked@ngo.example"]
    assert notice["Subject"] == "Sent: Free the Karakalpak defenders"
    text = text_of(notice)
    day = campaign.launched_at.astimezone(UTC)  # type: ignore[union-attr]
    assert f"It went out on {day.day} " in text and "to 3 recipients:" in text
    assert "- Ambassador, Embassy of France in Tashkent" in text
    assert "- President of the European Council, European Council" in text
    assert "- 1 other recipient" in text  # the journalist at risk is counted, not described
    assert "Free Radio" not in text and "@" not in text.replace("asked@ngo.example", "")
    [attachment] = list(notice.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    pdf = PdfReader(io.BytesIO(attachment.get_content()))
    pdf_text = " ".join(page_.extract_text() for page_ in pdf.pages)
    for name in ("Asking Association", "Quiet Committee", "Ligue des droits"):
        assert name in pdf_text
    assert "Release them." in pdf_text
    assert mails["fr@ngo.example"]["Subject"] == "Envoyée\u00a0: Free the Karakalpak defenders"
    assert "à 3 destinataires\u00a0:" in text_of(mails["fr@ngo.example"])

    db.session.refresh(asked)
    db.session.refresh(quiet)
    assert asked.notified_at is not None and quiet.notified_at is None
    # A second campaign of the same statement tells nobody twice; a later signer who asked
    # is told about the campaign that carried their name.
    later = approve("later@ngo.example", "Late Alliance", wants_notice=True)
    db.session.commit()
    fault_smtp.reset()
    second = campaigns.create_campaign(
        statement, audience=AudienceSpec((audience,)), from_address="office@example.org"
    )
    assert campaigns.launch_campaign(second)
    db.session.commit()
    sent_all(second)
    assert deliver_notices() == 1
    assert [rcpt for rcpt, _ in received(fault_smtp)] == ["later@ngo.example"]
    db.session.refresh(later)
    assert later.notified_at is not None
    db.session.refresh(french)
    assert french.notified_at is not None and french.notified_at < later.notified_at


def test_the_invitations_page_invites_a_list_and_shows_who_signed(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    statement = joint_statement()
    page = sign_on.open_sign_on(statement)
    audience = partner_list(
        "Page partners",
        {"email": "a@partner.example", "organisation": "Alpha"},
        {"email": "b@partner.example", "organisation": "Beta"},
    )
    add_signature(page, "a@partner.example", "Alpha", SignatureStatus.APPROVED)
    db.session.commit()
    url = f"/statements/{statement.id}/sign-on/invitations"

    viewer = app.test_client()
    sign_in(viewer, make_user(Role.VIEWER, "viewer@example.org"))
    assert viewer.get(url).status_code == 403
    login(Role.EDITOR)
    page_html = client.get(url).get_data(as_text=True)
    assert "Nobody has been invited yet." in page_html and "No reminder." in page_html

    refused = client.post(url, data={"audience": "segment:4242"})
    assert refused.status_code == 422
    assert "not a list or segment" in refused.get_data(as_text=True)

    done = client.post(url, data={"audience": audience}, follow_redirects=True)
    html = done.get_data(as_text=True)
    assert done.status_code == 200
    assert "2 invited" in html
    # The signature column uses the signature-status labels.
    assert "a@partner.example" in html and 'signature-approved">Approved<' in html
    assert 'signature-none">Not signed<' in html
    assert f"/sign/{page.token}" in html
    assert len(get_queue().get_jobs()) == 2  # two invitation e-mails, queued after the commit


def test_an_invitation_the_mail_server_refused_goes_when_the_job_is_tried_again(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    from campaign.mail import SendError

    page = sign_on.open_sign_on(joint_statement())
    set_deadline(page, deadline_in(20), None)
    audience = partner_list("Partners", {"email": "ngo@partner.example", "organisation": "NGO"})
    invite(page, audience)
    db.session.commit()
    [job] = [j for j in get_queue().get_jobs() if j.func_name == "workers.jobs.send_notice"]
    assert job.retries_left == 5  # RQ tries a refused notice again, later
    fault_smtp.fail(451, "4.3.0 Try again later", stage="mail", times=1)
    with pytest.raises(SendError):
        send_notice(*job.args, commit=db.session.commit)
    db.session.expire_all()
    invitation = db.session.scalars(select(SignOnInvitation)).one()
    assert invitation.invited_at is None  # not counted as invited: it was not
    assert send_notice(*job.args, commit=db.session.commit) == 1  # the retry
    assert [rcpt for rcpt, _ in received(fault_smtp)] == ["ngo@partner.example"]
