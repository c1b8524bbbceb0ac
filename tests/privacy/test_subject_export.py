"""Access requests (decision 0089): everything stored about one address, as a ZIP of JSON and
the exact .eml files, made by a job from the contact page (admins only) or by
`campaign subject-export EMAIL FILE`, audited without the address in clear."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import zipfile
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select

from campaign.extensions import db
from campaign.models import (
    AuditEvent,
    Contact,
    Role,
    Signature,
    SignOn,
    SubjectExport,
    TrackingEvent,
    campaign_cases,
)
from campaign.queue import get_queue
from campaign.services.accounts.audit import record_event
from campaign.services.contacts.trash import trash_contact
from campaign.services.privacy import subject_export
from tests.conftest import make_user, sign_in
from tests.factories import (
    CampaignFactory,
    CaseFactory,
    ContactFactory,
    ContactListFactory,
    DeliveryFactory,
    InboundMessageFactory,
)
from tests.pages import csrf_token_in, element_text
from workers import context, jobs

ADDRESS = "Olga.Petrova@Example.org"
LETTER = (
    b"From: Campaign <campaign@example.org>\r\nTo: olga.petrova@example.org\r\n"
    b"Subject: Free them\r\nMessage-ID: <letter-1@example.org>\r\n\r\nDear Ms Petrova,\r\n"
)
REPLY = (
    b"From: olga.petrova@example.org\r\nTo: campaign@example.org\r\nSubject: Re: Free them\r\n"
    b"In-Reply-To: <letter-1@example.org>\r\n\r\nThank you, I will raise it.\r\n"
)


def _stored_person() -> dict[str, Any]:
    """A contact with a letter (and its copy), a reply, an open, a signature, a case and
    audit entries; another contact with a letter of the same campaign."""
    person: Any = ContactFactory(
        email=ADDRESS, given_name="Olga", family_name="Petrova", role_type="journalist"
    )
    other: Any = ContactFactory(email="someone.else@example.org", family_name="Else")
    people = ContactListFactory(name="Journalists", contacts=[person, other])
    campaign: Any = CampaignFactory(name="Free them", contact_list=people)
    sent = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    letter: Any = DeliveryFactory(
        campaign=campaign,
        contact_id=person.id,
        email=person.email,
        status="sent",
        sent_at=sent,
        message_id="<letter-1@example.org>",
        message_sha256=hashlib.sha256(LETTER).hexdigest(),
        message_blob=zlib.compress(LETTER, 1),
    )
    DeliveryFactory(
        campaign=campaign,
        contact_id=other.id,
        email=other.email,
        status="sent",
        message_blob=zlib.compress(b"Subject: not hers\r\n\r\nx\r\n"),
    )
    InboundMessageFactory(
        delivery=letter,
        subject="Re: Free them",
        text="Thank you, I will raise it.",
        raw_blob=zlib.compress(REPLY),
        raw_size=len(REPLY),
    )
    db.session.add(
        TrackingEvent(
            campaign_id=campaign.id,
            delivery_id=letter.id,
            kind="open",
            ip_prefix="192.0.2.0/24",
            user_agent="Thunderbird",
            hit_key="hit-1",
        )
    )
    sign_on = SignOn(statement_id=campaign.statement_id, token="sign-on-token")
    db.session.add(sign_on)
    db.session.flush()
    db.session.add(
        Signature(
            sign_on_id=sign_on.id,
            kind="individual",
            name="Olga Petrova",
            publish_as="full",
            email="olga.petrova@example.org",
            email_key="olga.petrova@example.org",
            name_key="olga petrova",
            status="confirmed",
        )
    )
    case: Any = CaseFactory(name="Real Name", pseudonym="A.", is_high_risk=True)
    db.session.execute(insert(campaign_cases).values(campaign_id=campaign.id, case_id=case.id))
    record_event("contact.update", target_type="contact", target_id=person.id, detail={"n": 1})
    record_event(
        "suppression.remove",
        target_type="suppression",
        target_id=99,
        detail={"email": "olga.petrova@example.org", "by": "staff.member@ngo.example"},
    )
    record_event("contact.update", target_type="contact", target_id=other.id, detail={"n": 2})
    db.session.commit()
    return {"person": person.id, "other": other.id, "letter": letter.id, "case": case.id}


def _zip(data: bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(data))


def _json(archive: zipfile.ZipFile, name: str) -> Any:
    return json.loads(archive.read(name))


def _check_complete_export(archive: zipfile.ZipFile, ids: dict[str, Any]) -> None:
    names = set(archive.namelist())
    assert {
        "README.txt",
        "person.json",
        "deliveries.json",
        "replies.json",
        "tracking.json",
        "signatures.json",
        "audit.json",
    } <= names
    person = _json(archive, "person.json")
    (contact,) = person["contacts"]
    fields = {f["field"]: f for f in contact["fields"]}
    assert fields["family_name"]["value"] == "Petrova"
    assert fields["role_type"]["value_label"] == "Journalist"  # a label, not only a code
    assert set(fields) == {c.name for c in Contact.__table__.columns}  # every column
    assert [lst["name"] for lst in contact["lists"]] == ["Journalists"]
    # A case at high risk is another person's: named by its pseudonym only.
    assert [c["name"] for c in person["cases"]] == ["A."]
    letters = _json(archive, "deliveries.json")["letters"]
    assert [d["id"] for d in letters] == [ids["letter"]]
    assert letters[0]["status_label"] == "Sent"
    assert archive.read(letters[0]["file"]) == LETTER  # byte for byte what was sent
    (reply,) = _json(archive, "replies.json")
    assert reply["text"] == "Thank you, I will raise it."
    assert archive.read(reply["file"]) == REPLY
    (event,) = _json(archive, "tracking.json")
    assert event["kind_label"] == "Opened" or event["kind"] == "open"
    assert event["network"] == "192.0.2.0/24"
    (signature,) = _json(archive, "signatures.json")["signatures"]
    assert signature["name"] == "Olga Petrova" and "confirm_hash" not in signature
    audit = _json(archive, "audit.json")
    details = [entry["detail"] for entry in audit]
    assert {"n": 1} in details and {"n": 2} not in details  # hers, not the other contact's
    removed = next(d for d in details if "email" in d)
    assert removed == {"email": "olga.petrova@example.org", "by": "[another address]"}
    assert all("actor" not in json.dumps(entry) for entry in audit)  # staff left out
    assert "someone.else@example.org" not in json.dumps(
        [_json(archive, n) for n in names if n.endswith(".json")]
    )


def test_the_export_holds_each_kind_and_the_exact_messages(app: Flask) -> None:
    ids = _stored_person()
    record = subject_export.collect_subject("  olga.petrova@EXAMPLE.org ")
    assert not record.is_empty
    assert record.counts()["letters"] == 1 and record.counts()["signatures"] == 1
    target = io.BytesIO()
    seen: list[tuple[int, int]] = []
    subject_export.write_export(record, target, progress=lambda d, t: seen.append((d, t)))
    _check_complete_export(_zip(target.getvalue()), ids)
    assert seen[-1] == (record.total, record.total)


def test_a_contact_in_the_trash_is_exported_too(app: Flask) -> None:
    ids = _stored_person()
    trash_contact(db.session.get_one(Contact, ids["person"]))
    db.session.commit()
    record = subject_export.collect_subject(ADDRESS)
    assert record.contact_ids == [ids["person"]]
    target = io.BytesIO()
    subject_export.write_export(record, target)
    (contact,) = _json(_zip(target.getvalue()), "person.json")["contacts"]
    assert contact["in_trash"] is True


def test_nothing_stored_is_empty_and_still_a_valid_export(app: Flask) -> None:
    _stored_person()
    record = subject_export.collect_subject("nobody@example.org")
    assert record.is_empty
    target = io.BytesIO()
    subject_export.write_export(record, target, language="fr")
    archive = _zip(target.getvalue())
    assert _json(archive, "deliveries.json") == {"letters": [], "answers": []}
    readme = archive.read("README.txt").decode()
    assert "Rien n’est enregistré sur cette adresse." in readme  # in the asker's language


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_bad_address_is_refused_with_the_reason(app: Flask) -> None:
    with pytest.raises(subject_export.SubjectExportError, match="not a valid email address"):
        subject_export.collect_subject("no-at-sign")


def _queued() -> list[Any]:
    return [job for job in get_queue().jobs if job.func_name == subject_export.JOB]


def _run_queued_jobs(app: Flask) -> None:
    context.set_app(app)
    for job in _queued():
        job.delete()
        jobs.export_subject(*job.args)
    db.session.expire_all()


def test_contact_page_button_runs_a_job_then_offers_the_download(
    app: Flask, client: FlaskClient
) -> None:
    ids = _stored_person()
    admin = make_user(Role.ADMIN)
    sign_in(client, admin)
    page = client.get(f"/contacts/{ids['person']}").get_data(as_text=True)
    assert "Export everything stored about this person" in page
    answer = client.post(f"/privacy/exports/contact/{ids['person']}")
    assert answer.status_code == 302
    shown = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert 'id="export-progress"' in shown and "<progress" in shown
    export = db.session.scalars(select(SubjectExport)).one()
    assert export.email == "Olga.Petrova@example.org"  # kept only while the job needs it
    _run_queued_jobs(app)
    export = db.session.scalars(select(SubjectExport)).one()
    assert export.status == "done" and export.email == ""
    path = subject_export.exports_folder() / export.file_name
    assert path.stat().st_mode & 0o777 == 0o600
    shown = client.get(f"/privacy/exports/{export.token}").get_data(as_text=True)
    assert "Ready to download" in element_text(shown, "export-status")
    download = client.get(f"/privacy/exports/{export.token}/download")
    assert download.status_code == 200 and download.headers["Cache-Control"] == "no-store"
    _check_complete_export(_zip(download.get_data()), ids)
    # Audited: who asked, for which contact; the address only masked.
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action.like("subject.%")).order_by(AuditEvent.id)
    ).all()
    assert [(e.action, e.target_id, e.actor_id) for e in events] == [
        ("subject.export", str(ids["person"]), admin.id),
        ("subject.export_download", str(ids["person"]), admin.id),
    ]
    assert "olga.petrova" not in json.dumps([e.detail for e in events]).lower()
    # After its day the file is removed and the link says so.
    subject_export.remove_expired(datetime.now(UTC) + timedelta(hours=25))
    db.session.commit()
    assert not path.exists()
    gone = client.get(f"/privacy/exports/{export.token}/download", follow_redirects=True)
    assert "can no longer be downloaded" in gone.get_data(as_text=True)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_only_admins_may_export(app: Flask, client: FlaskClient) -> None:
    ids = _stored_person()
    sign_in(client, make_user(Role.SENDER))
    page = client.get(f"/contacts/{ids['person']}").get_data(as_text=True)
    assert "Export everything stored about this person" not in page
    assert client.post(f"/privacy/exports/contact/{ids['person']}").status_code == 403
    assert client.get("/privacy/exports/").status_code == 403
    assert client.post("/privacy/exports/", data={"email": ADDRESS}).status_code == 403
    assert db.session.scalars(select(SubjectExport)).all() == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("csrf_enabled", [True])
def test_the_export_form_needs_its_csrf_token(app: Flask, client: FlaskClient) -> None:
    ids = _stored_person()
    sign_in_page = client.get("/login").get_data(as_text=True)
    admin = make_user(Role.ADMIN)
    client.post(
        "/login",
        data={"email": admin.email, "password": "x" * 0 + _password(), **_token(sign_in_page)},
    )
    refused = client.post(f"/privacy/exports/contact/{ids['person']}")
    assert refused.status_code == 400
    assert db.session.scalars(select(SubjectExport)).all() == []
    page = client.get(f"/contacts/{ids['person']}").get_data(as_text=True)
    accepted = client.post(
        f"/privacy/exports/contact/{ids['person']}", data={"csrf_token": csrf_token_in(page)}
    )
    assert accepted.status_code == 302
    assert len(db.session.scalars(select(SubjectExport)).all()) == 1


def _password() -> str:
    from tests.conftest import TEST_PASSWORD

    return TEST_PASSWORD


def _token(page: str) -> dict[str, str]:
    return {"csrf_token": csrf_token_in(page)}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_signer_who_is_not_a_contact_is_found_by_the_address_form(
    app: Flask, client: FlaskClient
) -> None:
    _stored_person()
    sign_in(client, make_user(Role.ADMIN))
    bad = client.post("/privacy/exports/", data={"email": "not an address"})
    assert bad.status_code == 422 and "Address:" in bad.get_data(as_text=True)
    nothing = client.post("/privacy/exports/", data={"email": "nobody@example.org"})
    page = nothing.get_data(as_text=True)
    assert "Nothing is stored about nobody@example.org" in element_text(page, "nothing-stored")
    assert db.session.scalars(select(SubjectExport)).all() == []
    anyway = client.post(
        "/privacy/exports/", data={"email": "nobody@example.org", "write_empty": "1"}
    )
    assert anyway.status_code == 302
    _run_queued_jobs(app)
    export = db.session.scalars(select(SubjectExport)).one()
    assert export.is_empty and export.status == "done" and export.contact_id is None
    shown = client.get(f"/privacy/exports/{export.token}").get_data(as_text=True)
    assert 'id="export-empty"' in shown


def _campaign_command(app: Flask, *args: str) -> subprocess.CompletedProcess[str]:
    """The command as `campaign` runs it, in this process (the console script's own start is
    tested once, in tests/backups/test_backup_cli.py and tests/commands/test_cli_help.py)."""
    result = app.test_cli_runner().invoke(
        args=list(args), env={"LANG": "C.UTF-8", "LANGUAGE": None, "LC_ALL": None}
    )
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


# One engine: the export itself runs on both in the tests above; this one is the command's
# output and exit status.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_command_writes_the_export_and_never_overwrites(app: Flask, tmp_path: Path) -> None:
    ids = _stored_person()
    folder = tmp_path / "answers"
    folder.mkdir()
    target = folder / "olga.zip"
    done = _campaign_command(app, "subject-export", ADDRESS, str(target))
    assert done.returncode == 0, done.stderr
    assert "100%" in done.stderr  # the progress line
    assert f"{target} written" in done.stdout
    _check_complete_export(zipfile.ZipFile(target), ids)
    db.session.expire_all()
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "subject.export")
    ).one()
    assert event.target_id == str(ids["person"]) and event.remote_addr == "cli"
    assert "olga.petrova@" not in json.dumps(event.detail).lower()
    before = target.read_bytes()
    again = _campaign_command(app, "subject-export", ADDRESS, str(target))
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert target.read_bytes() == before
    assert [p.name for p in folder.iterdir()] == ["olga.zip"]  # no leftover draft


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_command_says_when_nothing_is_stored(app: Flask, tmp_path: Path) -> None:
    target = tmp_path / "nobody.zip"
    runner = app.test_cli_runner()
    result = runner.invoke(args=["subject-export", "nobody@example.org", str(target)])
    assert result.exit_code == 0, result.output
    assert "Nothing is stored about nobody@example.org" in result.output
    assert _json(zipfile.ZipFile(target), "person.json")["contacts"] == []
    bad = runner.invoke(args=["subject-export", "no-at-sign", str(tmp_path / "x.zip")])
    assert bad.exit_code == 1 and "not a valid email address" in bad.output
    assert not (tmp_path / "x.zip").exists()
    missing = runner.invoke(
        args=["subject-export", "nobody@example.org", str(tmp_path / "no" / "x.zip")]
    )
    assert missing.exit_code == 1 and "cannot be written" in missing.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_many_letters_are_streamed_with_progress(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of CHUNK rows: 25 letters in chunks of 4 give the same export as one chunk."""
    monkeypatch.setattr(subject_export, "CHUNK", 4)
    person: Any = ContactFactory(email=ADDRESS, family_name="Petrova")
    campaign: Any = CampaignFactory(recipients=[person])
    for step in range(25):
        body = LETTER + f"step {step}\r\n".encode()
        DeliveryFactory(
            campaign=campaign,
            contact_id=person.id,
            email=ADDRESS,
            step=step,
            status="sent",
            message_blob=zlib.compress(body),
        )
    db.session.commit()
    record = subject_export.collect_subject(ADDRESS)
    seen: list[int] = []
    target = io.BytesIO()
    subject_export.write_export(record, target, progress=lambda d, t: seen.append(d))
    archive = _zip(target.getvalue())
    letters = _json(archive, "deliveries.json")["letters"]
    assert len(letters) == 25
    assert all(archive.read(d["file"]).endswith(f"step {d['step']}\r\n".encode()) for d in letters)
    assert seen == sorted(seen) and seen[-1] == record.total


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_queue_that_does_not_answer_says_so_and_keeps_no_address(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from campaign import queue

    ids = _stored_person()
    sign_in(client, make_user(Role.ADMIN))

    def down(*args: Any, **kwargs: Any) -> Any:
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(queue, "get_queue", down)
    page = client.post(f"/privacy/exports/contact/{ids['person']}", follow_redirects=True).get_data(
        as_text=True
    )
    assert "could not be queued" in element_text(page, "export-failure")
    export = db.session.scalars(select(SubjectExport)).one()
    assert export.status == "failed" and export.email == ""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_export_withdrawn_while_it_runs_keeps_no_file(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An erasure (or a removal) while the job runs takes its run key: the job stops at its
    next progress write and leaves nothing in the private folder."""
    ids = _stored_person()
    sign_in(client, make_user(Role.ADMIN))
    client.post(f"/privacy/exports/contact/{ids['person']}")
    real_collect = subject_export.collect_subject

    def collect_then_withdraw(email: str) -> subject_export.SubjectRecord:
        record = real_collect(email)
        with db.engine.begin() as connection:  # another process takes the run key
            connection.execute(SubjectExport.__table__.update().values(run_key=""))
        return record

    monkeypatch.setattr(subject_export, "collect_subject", collect_then_withdraw)
    _run_queued_jobs(app)
    export = db.session.scalars(select(SubjectExport)).one()
    assert export.status != "done" and export.file_name == ""
    assert list(subject_export.exports_folder().iterdir()) == []


# --- review findings (decision 0089, second round) ------------------------------------------


def _export_of(address: str, **options: Any) -> tuple[Any, zipfile.ZipFile]:
    record = subject_export.collect_subject(address)
    target = io.BytesIO()
    subject_export.write_export(record, target, **options)
    return record, _zip(target.getvalue())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_audit_entries_match_whole_addresses_only(app: Flask) -> None:
    """'ann@example.org' is not inside 'joann@example.org': Joann's entry is not Ann's."""
    record_event("contact.trash", detail={"email": "joann@example.org", "name": "Joann Smith"})
    record_event("contact.note", detail={"text": "Wrote to ann@example.org."})
    db.session.commit()
    record, archive = _export_of("ann@example.org")
    details = [entry["detail"] for entry in _json(archive, "audit.json")]
    assert details == [{"text": "Wrote to ann@example.org."}]  # her own address kept (N1)
    assert record.counts()["audit_entries"] == 1
    assert subject_export.collect_subject("nobody.ann@example.org").is_empty


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_own_address_in_brackets_or_before_a_full_stop_is_not_redacted(app: Flask) -> None:
    record_event(
        "contact.note",
        detail={"text": "Ask (olga.petrova@example.org) or [olga.petrova@example.org]."},
    )
    record_event("contact.note", detail={"text": "Then olga.petrova@example.org. Or x@y.org."})
    db.session.commit()
    _record, archive = _export_of(ADDRESS)
    texts = [entry["detail"]["text"] for entry in _json(archive, "audit.json")]
    assert texts == [
        "Ask (olga.petrova@example.org) or [olga.petrova@example.org].",
        "Then olga.petrova@example.org. Or [another address].",
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_records_merged_away_and_their_letters_are_exported(app: Flask) -> None:
    from campaign.services.contacts.merge import default_choices, merge_contacts

    new: Any = ContactFactory(email=ADDRESS, family_name="Petrova")
    old: Any = ContactFactory(
        email="o.petrova@ministry.example", family_name="Petrova", notes="met at the trial"
    )
    campaign: Any = CampaignFactory(recipients=[new, old])
    DeliveryFactory(campaign=campaign, contact_id=new.id, email=new.email, status="sent")
    to_old: Any = DeliveryFactory(
        campaign=campaign,
        contact_id=old.id,
        email=old.email,
        status="sent",
        message_blob=zlib.compress(b"Subject: x\r\n\r\nto the old address\r\n"),
    )
    db.session.commit()
    merge_contacts(new, old, {**default_choices(new, old), "email": "survivor"})
    db.session.commit()
    both, to_old_id = sorted([new.id, old.id]), to_old.id
    record, archive = _export_of(ADDRESS)
    assert record.contact_ids == both
    person = json.dumps(_json(archive, "person.json"))
    assert "met at the trial" in person and "o.petrova@ministry.example" in person
    letters = _json(archive, "deliveries.json")["letters"]
    (old_letter,) = [d for d in letters if d["id"] == to_old_id]
    assert archive.read(old_letter["file"]).endswith(b"to the old address\r\n")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_her_reply_from_a_merged_away_address_is_hers(app: Flask) -> None:
    from campaign.services.contacts.merge import merge_contacts

    other = "o.petrova@mail.example.net"
    raw = (
        b"From: Olga <O.Petrova@Mail.Example.NET>\r\nTo: campaign@example.org\r\n"
        b"Subject: Re: Free them\r\n\r\nWrite to me at o.petrova@mail.example.net.\r\n"
    )
    new: Any = ContactFactory(email=ADDRESS, family_name="Petrova")
    old: Any = ContactFactory(email=other, family_name="Petrova")
    campaign: Any = CampaignFactory(recipients=[old])
    letter: Any = DeliveryFactory(campaign=campaign, contact_id=old.id, email=other, status="sent")
    InboundMessageFactory(
        delivery=letter,
        from_address="O.Petrova@Mail.Example.NET",
        text=f"Write to me at {other} or {ADDRESS}.",
        raw_blob=zlib.compress(raw),
        raw_size=len(raw),
    )
    db.session.commit()
    merge_contacts(new, old, {})
    db.session.commit()

    _record, archive = _export_of(ADDRESS)
    (reply,) = _json(archive, "replies.json")
    assert reply["from"] == "O.Petrova@Mail.Example.NET" and reply["from_them"] is True
    assert reply["text"] == f"Write to me at {other} or {ADDRESS}."
    assert archive.read(reply["file"]) == raw


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_person_copied_in_on_others_letters_is_told_so(app: Flask) -> None:
    copied = "ivan.assistant@ministry.example"
    minister: Any = ContactFactory(
        email="minister@ministry.example",
        family_name="Minister",
        cc_emails=f"x.ivan.assistant@ministry.example {copied.upper()}",
    )
    ContactFactory(email="other@ministry.example", cc_emails="x.ivan.assistant@ministry.example")
    campaign: Any = CampaignFactory(recipients=[minister])
    letter: Any = DeliveryFactory(
        campaign=campaign,
        contact_id=minister.id,
        email=minister.email,
        status="sent",
        message_blob=zlib.compress(f"Cc: {copied}\r\nSubject: s\r\n\r\nb\r\n".encode()),
    )
    db.session.commit()
    minister_id, letter_id = minister.id, letter.id
    record, archive = _export_of(copied)
    assert not record.is_empty
    (by,) = _json(archive, "person.json")["copied_in_by"]
    assert by["id"] == minister_id and "copied in on letters to" in by["note"]
    assert [a.lower() for a in by["copy_addresses"]] == [copied]
    (delivery,) = _json(archive, "deliveries.json")["letters"]
    assert delivery["id"] == letter_id and delivery["in_copy"] is True
    assert delivery["in_copy_label"] == "in copy"
    assert subject_export.collect_subject("ivan.assistant@ministry.exampl").is_empty


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_webhooks_signatory_bounces_and_rejects_files_are_exported(
    app: Flask, tmp_path: Path
) -> None:
    from campaign.models import (
        ContactImport,
        InboundMessage,
        Signatory,
        WebhookDelivery,
        WebhookEndpoint,
        WebhookEvent,
    )

    person: Any = ContactFactory(email=ADDRESS, family_name="Petrova")
    endpoint = WebhookEndpoint(url="https://crm.partner.example/hook", event_types=[])
    named = WebhookEvent(
        message_id="msg_1", type="delivery.bounced", payload={"email": "olga.petrova@example.org"}
    )
    by_id = WebhookEvent(
        message_id="msg_2", type="reply.received", payload={"contact_id": person.id}
    )
    others = WebhookEvent(
        message_id="msg_3", type="reply.received", payload={"email": "xolga.petrova@example.org"}
    )
    db.session.add_all([endpoint, named, by_id, others])
    db.session.flush()
    db.session.add(
        WebhookDelivery(
            endpoint_id=endpoint.id,
            event_id=named.id,
            status="delivered",
            delivered_at=datetime(2026, 11, 3, tzinfo=UTC),
        )
    )
    db.session.add(
        InboundMessage(
            source="file",
            source_key="bounce-1",
            from_address="mailer-daemon@mx.example",
            subject="Undelivered Mail",
            kind="bounce",
            bounce_kind="hard",
            bounce_recipients=["Olga.Petrova@example.org"],
            text="550 user unknown",
        )
    )
    statement_id = CampaignFactory().statement_id
    signatory = Signatory(statement_id=statement_id, name="Olga Petrova", country="Belarus")
    sign_on = SignOn(statement_id=statement_id, token="sign-on-token")
    db.session.add_all([signatory, sign_on])
    db.session.flush()
    db.session.add(
        Signature(
            sign_on_id=sign_on.id,
            kind="individual",
            name="Olga Petrova",
            publish_as="full",
            email=ADDRESS,
            email_key="olga.petrova@example.org",
            name_key="olga petrova",
            status="approved",
            signatory_id=signatory.id,
        )
    )
    rejects = tmp_path / "people-rejects.csv"
    rejects.write_text("email,reason\nolga.petrova@example.org,bad country\n", encoding="utf-8")
    db.session.add(
        ContactImport(original_filename="people.csv", stored_path="x", rejects_path=str(rejects))
    )
    db.session.commit()
    named_id, by_id_id = named.id, by_id.id
    _record, archive = _export_of(ADDRESS)
    disclosures = _json(archive, "disclosures.json")
    assert [d["id"] for d in disclosures] == [named_id, by_id_id]
    assert disclosures[0]["sent_to"][0]["host"] == "crm.partner.example"
    assert disclosures[0]["sent_to"][0]["delivered_at"].startswith("2026-11-03")
    (signature,) = _json(archive, "signatures.json")["signatures"]
    assert signature["signatory"]["country"] == "Belarus"
    (bounce,) = _json(archive, "replies.json")
    assert bounce["text"] == "550 user unknown" and bounce["from_them"] is False
    assert "people-rejects.csv" in archive.read("README.txt").decode()


def test_a_finished_export_is_found_by_its_keyed_hash(app: Flask, client: FlaskClient) -> None:
    """The row keeps no address once done, but erasure finds it (and its file) by the hash."""
    ids = _stored_person()
    sign_in(client, make_user(Role.ADMIN))
    client.post(f"/privacy/exports/contact/{ids['person']}")
    _run_queued_jobs(app)
    export = db.session.scalars(select(SubjectExport)).one()
    assert export.status == "done" and export.email == ""
    assert "olga" not in export.email_hash
    found = subject_export.exports_for_key("olga.petrova@example.org")
    assert [e.id for e in found] == [export.id]
    assert subject_export.exports_for_key("someone.else@example.org") == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_messages_of_other_people_are_redacted_and_their_eml_left_out(app: Flask) -> None:
    raw = (
        b"From: Ivan <ivan.assistant@ministry.example>\r\nTo: campaign@example.org\r\n"
        b"Cc: informant.name@gmail.example\r\nSubject: Re: Free them\r\n\r\nShe is away.\r\n"
    )
    person: Any = ContactFactory(email=ADDRESS, family_name="Petrova")
    campaign: Any = CampaignFactory(recipients=[person])
    letter: Any = DeliveryFactory(
        campaign=campaign, contact_id=person.id, email=ADDRESS, status="sent"
    )
    InboundMessageFactory(
        delivery=letter,
        from_address="ivan.assistant@ministry.example",
        text="Our informant (informant.name@gmail.example) says...",
        raw_blob=zlib.compress(raw),
        raw_size=len(raw),
    )
    db.session.commit()
    _record, archive = _export_of(ADDRESS)
    (reply,) = _json(archive, "replies.json")
    assert reply["from"] == "[another address]" and reply["from_them"] is False
    assert reply["text"] == "Our informant ([another address]) says..."
    assert reply["file"] is None and "not sent by them" in reply["from_note"]
    assert not any(name.startswith("replies/") for name in archive.namelist())
    _record, archive = _export_of(ADDRESS, others_messages=True)  # when asked for
    (reply,) = _json(archive, "replies.json")
    assert archive.read(reply["file"]) == raw


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_why_a_letter_has_no_copy_and_no_name_of_a_missing_file(app: Flask) -> None:
    person: Any = ContactFactory(email=ADDRESS, family_name="Petrova")
    campaign: Any = CampaignFactory(recipients=[person])
    common = {"campaign": campaign, "contact_id": person.id, "email": ADDRESS}
    retained: Any = DeliveryFactory(
        **common, step=1, status="sent", sent_at=datetime.now(UTC), message_sha256="ab" * 32
    )
    damaged: Any = DeliveryFactory(
        **common, step=2, status="sent", sent_at=datetime.now(UTC), message_blob=b"not zlib"
    )
    failed: Any = DeliveryFactory(**common, step=3, status="failed")
    db.session.commit()
    kept_ids = (retained.id, damaged.id, failed.id)
    _record, archive = _export_of(ADDRESS)
    letters = [d for d in _json(archive, "deliveries.json")["letters"]]
    assert [d["id"] for d in letters] == list(kept_ids)
    by_retention, by_damage, by_failure = letters
    assert "retention period" in by_retention["file_note"]
    assert by_damage["file"] is None and "damaged" in by_damage["file_note"]
    assert "no mail server accepted" in by_failure["file_note"]
    assert not any(name.startswith("letters/") for name in archive.namelist())


def _start_by_form(app: Flask, client: FlaskClient) -> SubjectExport:
    ids = _stored_person()
    sign_in(client, make_user(Role.ADMIN))
    client.post(f"/privacy/exports/contact/{ids['person']}")
    return db.session.scalars(select(SubjectExport)).one()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_export_removed_while_queued_keeps_no_file(app: Flask, client: FlaskClient) -> None:
    export = _start_by_form(app, client)
    client.post(f"/privacy/exports/{export.token}/remove")
    _run_queued_jobs(app)
    export = db.session.scalars(select(SubjectExport)).one()
    assert export.status == "expired" and export.file_name == ""
    assert list(subject_export.exports_folder().iterdir()) == []
    actions = db.session.scalars(select(AuditEvent.action)).all()
    assert "subject.export_remove" in actions


def test_an_erasure_as_the_export_finishes_wins(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the job's last check and its final write another process takes the run key:
    the final write is conditional, so no done row and no file."""
    _start_by_form(app, client)
    real_now = subject_export._now
    folder = subject_export.exports_folder()

    def now_then_erase() -> datetime:
        if any(p.suffix == ".zip" for p in folder.iterdir()):  # the ZIP is in place
            with db.engine.begin() as connection:
                connection.execute(
                    SubjectExport.__table__.update().values(
                        run_key="", file_name="", email="", status="expired"
                    )
                )
        return real_now()

    monkeypatch.setattr(subject_export, "_now", now_then_erase)
    _run_queued_jobs(app)
    export = db.session.scalars(select(SubjectExport)).one()
    assert export.status == "expired" and export.file_name == ""
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_expired_export_is_refused_without_the_sweep(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = _start_by_form(app, client)
    _run_queued_jobs(app)
    export = db.session.scalars(select(SubjectExport)).one()
    path = subject_export.exports_folder() / export.file_name
    export.expires_at = datetime.now(UTC) - timedelta(minutes=1)
    db.session.commit()
    monkeypatch.setattr(subject_export, "remove_expired", lambda now=None: 0)  # no sweep
    answer = client.get(f"/privacy/exports/{export.token}/download", follow_redirects=True)
    assert "can no longer be downloaded" in answer.get_data(as_text=True)
    assert path.exists()  # the sweep did not run: the refusal is the expiry's own


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_failures_are_worded_when_shown(app: Flask, client: FlaskClient) -> None:
    from rq.timeouts import JobTimeoutException

    export = _start_by_form(app, client)
    denied = PermissionError(13, "Permission denied", "/srv/instance/private/exports/x.zip")
    subject_export.mark_failed(export.id, export.run_key, denied)
    db.session.commit()
    db.session.refresh(export)
    assert "Permission denied" in export.error and "PermissionError" not in export.error
    text = subject_export.failure_text(export)
    assert "/srv/instance/private/exports/x.zip" in text and "Permission denied" in text
    export.error = ""
    subject_export.mark_failed(export.id, export.run_key, JobTimeoutException("slow"))
    db.session.commit()
    db.session.refresh(export)
    assert "took longer than its 600 seconds" in subject_export.failure_text(export)
    with app.test_request_context(headers={"Accept-Language": "fr"}):
        from flask_babel import force_locale

        with force_locale("fr"):
            assert "600" in subject_export.failure_text(export)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_queued_export_waiting_behind_others_is_not_failed(
    app: Flask, client: FlaskClient
) -> None:
    export = _start_by_form(app, client)
    late = datetime.now(UTC) + subject_export.STALE_AFTER * 2
    assert not subject_export.is_stale(export, late)  # its job is still in the queue
    for job in _queued():
        job.delete()  # no worker will ever take it
    assert subject_export.is_stale(export, late)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_file_system_without_hard_links_still_gets_the_file(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    _stored_person()

    def no_links(source: Any, target: Any) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")  # as FAT/exFAT answer

    monkeypatch.setattr(subject_export.os, "link", no_links)
    folder = tmp_path / "answers"
    folder.mkdir()
    target = folder / "answer.zip"
    summary = subject_export.export_to_file(ADDRESS, target)
    assert summary.size_bytes == target.stat().st_size and target.stat().st_mode & 0o777 == 0o600
    assert _zip(target.read_bytes()).testzip() is None
    assert sorted(p.name for p in folder.iterdir()) == ["answer.zip"]
    with pytest.raises(subject_export.SubjectExportError, match="already exists"):
        subject_export.export_to_file(ADDRESS, target)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sigterm_during_the_command_leaves_no_part_file(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    _stored_person()
    real_write = subject_export.write_export

    def write_then_terminated(*args: Any, **kwargs: Any) -> Any:
        summary = real_write(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill` from the shell, mid-export
        return summary

    monkeypatch.setattr(subject_export, "write_export", write_then_terminated)
    folder = tmp_path / "answers"
    folder.mkdir()
    result = app.test_cli_runner().invoke(args=["subject-export", ADDRESS, str(folder / "a.zip")])
    assert result.exit_code != 0 and "was not written" in result.output
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_search_phase_says_what_it_does(app: Flask, client: FlaskClient) -> None:
    export = _start_by_form(app, client)
    export.status = "running"
    db.session.commit()
    shown = client.get(f"/privacy/exports/{export.token}/progress").get_json()
    assert shown["text"] == "Looking for everything stored about the address…"
