"""Access requests (decision 0089): everything stored about one address, as a ZIP of JSON and
the exact .eml files, made by a job from the contact page (admins only) or by
`campaign subject-export EMAIL FILE`, audited without the address in clear."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
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


def _environment(app: Flask) -> dict[str, str]:
    config = app.config
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env.update(
        {
            "CAMPAIGN_SECRET_KEY": config["SECRET_KEY"],
            "CAMPAIGN_INSTANCE_PATH": config["INSTANCE_PATH"],
            "CAMPAIGN_DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
            "CAMPAIGN_REDIS_URL": config["REDIS_URL"],
            "LANG": "C.UTF-8",
        }
    )
    env.pop("LANGUAGE", None)
    env.pop("LC_ALL", None)
    return env


def _campaign_command(app: Flask, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "campaign"), *args],
        env=_environment(app),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# One engine: the export itself runs on both in the tests above; this one is the console
# script's own start, output and exit status (two processes, ~2 s each).
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
