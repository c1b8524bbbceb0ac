"""Erasure on request: the person is gone, the ledger's counts stay, and nobody writes to
them again (decision 0090)."""

from __future__ import annotations

import contextlib
import json
import stat
import zlib
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, insert, inspect, select, text, update

from campaign.extensions import db
from campaign.models import (
    AuditEvent,
    Campaign,
    CampaignStatus,
    Contact,
    Delivery,
    DeliveryStatus,
    Role,
    Signature,
    SignatureStatus,
    SubjectExport,
    Suppression,
    SuppressionReason,
    TrackingEvent,
    list_memberships,
)
from campaign.services.contacts import importing
from campaign.services.contacts.contacts import ContactInputError, create_contact, find_by_email
from campaign.services.contacts.search import ContactFilters, filtered_query
from campaign.services.contacts.suppressions import suppress_address
from campaign.services.contacts.trash import trash_contact
from campaign.services.privacy import erased_addresses, erasure, subject_export
from campaign.services.privacy.subject_export import collect_subject
from campaign.services.sending import campaigns
from campaign.services.sign_on import signatures
from campaign.services.sign_on.pages import open_sign_on
from tests.factories import CampaignFactory, ContactListFactory, InboundMessageFactory

EMAIL = "Olga.Petrova@Example.org"
KEY = EMAIL.lower()
NAME = "Olga Petrova"


def person(**fields: Any) -> Contact:
    return create_contact(
        {"email": EMAIL, "given_name": "Olga", "family_name": "Petrova", **fields}
    )


def traces(*needles: str) -> list[str]:
    """Every table.column (text, JSON or a zlib/plain blob) holding one of the needles."""
    wanted = [n.lower() for n in needles]
    found = []
    connection = db.session.connection()
    for table in inspect(connection).get_table_names():
        if table == "alembic_version":
            continue
        rows = connection.execute(text(f'SELECT * FROM "{table}"')).mappings()  # noqa: S608
        for row in rows:
            for column, value in row.items():
                if _holds(value, wanted):
                    found.append(f"{table}.{column}")
    return sorted(set(found))


def _holds(value: Any, wanted: list[str]) -> bool:
    if value is None or isinstance(value, (int, float)):
        return False
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        with contextlib.suppress(zlib.error):
            raw = zlib.decompress(raw)
        value = raw.decode("utf-8", "replace")
    elif not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=str)
    lowered = value.lower()
    if "\\u" in lowered:
        with contextlib.suppress(ValueError):
            lowered = json.dumps(json.loads(value), ensure_ascii=False).lower()
    return any(needle in lowered for needle in wanted)


def ledger_figures(campaign_id: int) -> dict[str, int]:
    return dict(
        db.session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.campaign_id == campaign_id)
            .group_by(Delivery.status)
        ).all()
    )


def finish(campaign: Campaign) -> None:
    """The campaign sent its letters (each with its stored copy) and finished."""
    for delivery in db.session.scalars(select(Delivery).where(Delivery.campaign_id == campaign.id)):
        delivery.status = DeliveryStatus.SENT.value
        delivery.last_reply = f"250 2.0.0 accepted for <{delivery.email}>"
        # Every letter names Olga Petrova as a co-signer.
        delivery.message_blob = zlib.compress(
            f"To: {delivery.email}\r\n\r\nDear colleague, ...\r\n-- {NAME}".encode()
        )
    campaign.status = CampaignStatus.FINISHED.value
    db.session.flush()


def _her_signature(sign_on: Any) -> Signature:
    """Her confirmed signature on `sign_on` (not added to the session)."""
    return Signature(
        sign_on_id=sign_on.id,
        kind="individual",
        name=NAME,
        publish_as="full",
        email=EMAIL,
        email_key=KEY,
        name_key="olga petrova",
        status=SignatureStatus.CONFIRMED.value,
    )


def test_an_erased_person_leaves_no_trace_and_the_ledger_keeps_its_counts(app: Flask) -> None:
    trashed = person(notes="an earlier record")
    trash_contact(trashed)  # the audit entry names them: address and name
    olga = person()
    other = create_contact({"email": "boris@example.org", "family_name": "Other"})
    contact_list = ContactListFactory(contacts=[olga, other])
    campaign = CampaignFactory(name="Summit letter", contact_list=contact_list, launched=True)
    finish(campaign)
    hers = db.session.scalar(select(Delivery).where(Delivery.contact_id == olga.id))
    assert hers is not None
    db.session.execute(
        insert(TrackingEvent).values(
            campaign_id=campaign.id, delivery_id=hers.id, kind="open", hit_key="hit-1"
        )
    )
    InboundMessageFactory(
        delivery=hers,
        subject=f"Re: from {NAME}",
        text=f"Thank you. {NAME}",
        raw_blob=zlib.compress(f"From: {EMAIL}\r\n\r\nThank you. {NAME}".encode()),
        attachments=[{"filename": "petrova-cv.pdf", "content_type": "application/pdf"}],
    )
    sign_on = open_sign_on(campaign.statement)
    db.session.add(_her_signature(sign_on))
    suppress_address(EMAIL, SuppressionReason.MANUAL, note="asked by phone")
    # An access-request export made for her earlier: its ZIP holds everything about her.
    export_file = subject_export.exports_folder() / "olga.zip"
    export_file.write_bytes(f"{EMAIL} {NAME}".encode())
    db.session.add(
        SubjectExport(
            token="t" * 20, contact_id=olga.id, status="done", file_name="olga.zip", email=EMAIL
        )
    )
    db.session.commit()
    before = ledger_figures(campaign.id)
    assert traces(EMAIL, NAME), "the set-up stored nothing to erase"

    result = erasure.erase_person(EMAIL)
    db.session.commit()

    assert result.was_stored
    assert result.counts["contacts"] == 2
    assert not export_file.exists()
    assert traces(EMAIL) == []
    # Her name stays only where the brief keeps it: in the copy of the letter already sent
    # to someone else, which named her as a co-signer (the page says so).
    assert traces(NAME) == ["deliveries.message_blob"]
    blobs = db.session.execute(select(Delivery.email, Delivery.message_blob)).all()
    assert {email for email, blob in blobs if blob is not None} == {"boris@example.org"}
    # The ledger: the same letters, the same figures; the other recipient untouched.
    assert ledger_figures(campaign.id) == before
    assert find_by_email(EMAIL) is None
    assert list(db.session.scalars(filtered_query(ContactFilters(q="Petrova")))) == []
    members = db.session.scalars(
        select(list_memberships.c.contact_id).where(list_memberships.c.list_id == contact_list.id)
    )
    assert list(members) == [other.id]
    assert collect_subject(EMAIL).is_empty
    # Only the keyed hash stays, and it recognises every spelling of the address.
    entry = db.session.scalar(select(Suppression).where(Suppression.reason == "erased"))
    assert entry is not None and entry.email == "" and entry.email_key.startswith("erased:")
    assert erased_addresses.is_erased(KEY) and erased_addresses.is_erased(f"  {EMAIL.upper()} ")
    assert not erased_addresses.is_erased("boris@example.org")
    assert erased_addresses.erased_among([EMAIL, "boris@example.org"]) == {EMAIL}
    erased_event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "person.erase"))
    assert erased_event is not None
    assert erased_event.detail["hash_prefix"] == entry.email_key.removeprefix("erased:")[:12]
    # The audit entries that named them say "[erased]" instead.
    trash_event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "contact.trash"))
    assert trash_event is not None and trash_event.detail["email"] == "[erased]"
    key_file = Path(app.config["INSTANCE_PATH"]) / "erasure_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_an_erasure_waits_for_a_campaign_sending_to_the_person(app: Flask) -> None:
    olga = person()
    CampaignFactory(name="Urgent appeal", recipients=[olga], launched=True)
    db.session.commit()

    with pytest.raises(erasure.ErasureError, match="Urgent appeal"):
        erasure.erase_person(EMAIL)
    db.session.rollback()

    assert find_by_email(EMAIL) is not None
    assert not erased_addresses.is_erased(EMAIL)


def test_an_address_nothing_is_stored_about_still_gets_its_hash(app: Flask) -> None:
    about = erasure.what_is_stored("nobody@example.org")
    assert not about.is_stored and not about.is_erased

    result = erasure.erase_person("nobody@example.org")
    db.session.commit()

    assert not result.was_stored
    assert erased_addresses.is_erased("Nobody@example.org")
    assert erasure.what_is_stored("nobody@example.org").is_erased


def test_not_an_address_is_explained() -> None:
    with pytest.raises(erasure.ErasureError, match="not an email address"):
        erasure.what_is_stored("no-at-sign")


@pytest.fixture
def erased(app: Flask) -> None:
    person()
    db.session.commit()
    erasure.erase_person(EMAIL)
    db.session.commit()


def test_a_later_import_skips_the_address_and_says_why(erased: None, tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text(
        f"given_name,family_name,email\nOlga,Petrova,{EMAIL.upper()}\nBoris,Other,b@example.org\n",
        encoding="utf-8",
    )
    info, rows = importing.open_contact_file(path)
    rows.close()
    rejected: list[importing.RowResult] = []
    rejects = tmp_path / "rejects.csv"
    result = importing.import_contacts(
        path,
        importing.auto_mapping(info.headers),
        on_reject=rejected.append,
        rejects_path=rejects,
    )
    db.session.commit()

    assert (result.imported, result.rejected) == (1, 1)
    assert [r.line for r in rejected] == [2]
    assert "erased on request" in rejected[0].reason
    assert "erased on request" in rejects.read_text(encoding="utf-8-sig")
    assert find_by_email(EMAIL) is None


def test_the_preview_shows_the_row_refused(erased: None, tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text(f"family_name,email\nPetrova,{EMAIL}\n", encoding="utf-8")
    info, rows = importing.open_contact_file(path)
    rows.close()

    preview = importing.preview_import(path, importing.auto_mapping(info.headers))

    assert preview.rows[0].outcome == "rejected"
    assert "erased on request" in preview.rows[0].problems[0][1]


def test_the_contact_form_and_the_api_refuse_the_address(erased: None) -> None:
    with pytest.raises(ContactInputError, match="erased on request") as raised:
        person()
    assert raised.value.errors[0].field == "email"
    outcomes = importing.upsert_contacts(
        [{"email": EMAIL, "family_name": "Petrova"}, {"email": "b@example.org", "family_name": "O"}]
    )
    assert [o.status for o in outcomes] == ["error", "created"]
    assert "erased on request" in outcomes[0].errors[0].message
    # Changing another contact's address to theirs is refused too.
    boris = db.session.get(Contact, outcomes[1].id)
    assert boris is not None
    from campaign.services.contacts.contacts import update_contact

    with pytest.raises(ContactInputError, match="erased on request"):
        update_contact(boris, {"email": EMAIL})


def test_the_sign_on_form_refuses_quietly(erased: None) -> None:
    statement_campaign = CampaignFactory(recipients=["a@example.org"])
    sign_on = open_sign_on(statement_campaign.statement)
    db.session.commit()
    form = {
        "kind": "individual",
        "name": NAME,
        "role": "lawyer",
        "organisation": "",
        "country": "France",
        "publish_as": "full",
        "email": EMAIL,
        "consent": "yes",
    }

    result = signatures.submit_signature(sign_on, form, language="en", client_ip="203.0.113.9")
    db.session.commit()

    # Answered as any signer is (the page does not tell that the address was erased), but
    # nothing is stored and no confirmation is e-mailed.
    assert result.outcome == signatures.SubmitOutcome.IGNORED
    assert db.session.scalar(select(func.count(Signature.id))) == 0


def test_a_launch_never_writes_to_an_erased_address_re_added_behind_the_guards(
    erased: None,
) -> None:
    contact_list = ContactListFactory(contacts=["b@example.org"])
    # A path that skipped the guards (raw SQL, a future feature): the contact is back.
    db.session.execute(
        insert(Contact).values(email=EMAIL, email_key=KEY, family_name="Petrova", search_key="")
    )
    back = db.session.scalar(select(Contact.id).where(Contact.email_key == KEY))
    db.session.execute(insert(list_memberships).values(list_id=contact_list.id, contact_id=back))
    campaign = CampaignFactory(contact_list=contact_list)
    db.session.commit()

    assert campaigns.launch_campaign(campaign)
    db.session.commit()

    written = db.session.scalars(select(Delivery.email).where(Delivery.campaign_id == campaign.id))
    assert list(written) == ["b@example.org"]


def test_a_restore_without_the_key_file_refuses_to_guess(erased: None, app: Flask) -> None:
    campaign = CampaignFactory(recipients=["b@example.org"])
    sign_on = open_sign_on(campaign.statement)
    db.session.commit()
    (Path(app.config["INSTANCE_PATH"]) / "erasure_key").unlink()

    with pytest.raises(ContactInputError, match="erasure_key"):
        create_contact({"email": "c@example.org", "family_name": "C"})
    db.session.rollback()

    with pytest.raises(campaigns.CampaignError, match="erasure_key"):
        campaigns.launch_campaign(campaign)
    db.session.rollback()
    form = {"kind": "organisation", "name": "Some NGO", "country": "France"}
    form.update(publish_as="full", email="ngo@example.org", consent="yes")
    with pytest.raises(signatures.SignOnClosed, match="no signatures at the moment"):
        signatures.submit_signature(sign_on, form, language="en", client_ip="203.0.113.9")
    db.session.rollback()
    assert db.session.scalar(select(func.count(Delivery.id))) == 0


def test_erased_entries_do_not_disturb_a_campaign_of_others(erased: None) -> None:
    campaign = CampaignFactory(recipients=["b@example.org", "c@example.org"], launched=True)
    db.session.execute(update(Campaign).where(Campaign.id == campaign.id).values(status="finished"))
    db.session.commit()
    assert db.session.scalar(select(func.count(Delivery.id))) == 2


def test_an_approved_co_signer_leaves_the_current_list_not_the_letters_sent(app: Flask) -> None:
    from campaign.models import Signatory, StatementVersion
    from campaign.services.sign_on import moderation

    campaign = CampaignFactory(recipients=["b@example.org"])
    sign_on = open_sign_on(campaign.statement)
    signature = _her_signature(sign_on)
    db.session.add(signature)
    db.session.flush()
    moderation.approve(signature)
    db.session.commit()
    assert [s.name for s in db.session.scalars(select(Signatory))] == [NAME]

    result = erasure.erase_person(EMAIL)
    db.session.commit()

    assert (result.counts["signatures"], result.counts["signatories"]) == (1, 1)
    assert list(db.session.scalars(select(Signatory))) == []
    versions = list(db.session.scalars(select(StatementVersion).order_by(StatementVersion.number)))
    assert versions[-1].change_summary == "signatory removed on an erasure request"
    assert versions[-1].snapshot["signatories"] == []
    # The version a letter may have been sent from keeps the name it had.
    assert NAME in json.dumps(versions[-2].snapshot)


def test_a_paused_campaign_waits_only_for_a_letter_a_worker_holds(app: Flask) -> None:
    olga = person()
    campaign = CampaignFactory(name="Paused appeal", recipients=[olga], launched=True)
    campaign.status = CampaignStatus.PAUSED.value
    hers = db.session.scalar(select(Delivery).where(Delivery.campaign_id == campaign.id))
    assert hers is not None
    hers.status = DeliveryStatus.SENDING.value  # claimed by a batch before the pause
    db.session.commit()

    with pytest.raises(erasure.ErasureError, match="Paused appeal"):
        erasure.erase_person(EMAIL)
    db.session.rollback()

    hers.status = DeliveryStatus.QUEUED.value  # the batch handed it back
    db.session.commit()
    erasure.erase_person(EMAIL)
    db.session.commit()
    db.session.refresh(hers)
    assert (hers.status, hers.email, hers.contact_id) == ("cancelled", "", None)


# --- the review's findings (decision 0090, "After review") ----------------------------------


def _raw_insert_contact(email: str, email_key: str, family_name: str = "Petrova") -> int:
    """A contact written behind every guard (raw SQL, a future path)."""
    db.session.execute(
        insert(Contact).values(email=email, email_key=email_key, family_name=family_name)
    )
    found = db.session.scalar(select(Contact.id).where(Contact.email_key == email_key))
    assert found is not None
    return found


def test_an_erased_address_is_never_a_copy_address(erased: None, tmp_path: Path) -> None:
    from campaign.services.contacts.contacts import update_contact
    from campaign.services.contacts.suppressions import find_suppression, is_suppressed
    from campaign.services.statements.complete_letters import LetterCache

    boris = create_contact({"email": "boris@example.net", "family_name": "Other"})
    # The contact form and the API (one service): refused on the copy field, in words.
    with pytest.raises(ContactInputError, match="not even as a copy") as raised:
        update_contact(boris, {"cc_emails": f"office@example.net, {EMAIL.upper()}"})
    assert [e.field for e in raised.value.errors] == ["cc_emails"]
    with pytest.raises(ContactInputError, match="not even as a copy"):
        create_contact({"email": "c@example.org", "family_name": "C", "cc_emails": EMAIL})
    outcomes = importing.upsert_contacts(
        [{"email": "d@example.org", "family_name": "D", "cc_emails": EMAIL}]
    )
    assert [e.field for e in outcomes[0].errors] == ["cc_emails"]
    # The import: the row is refused with the reason, its cells blanked in the rejects file.
    path = tmp_path / "contacts.csv"
    path.write_text(f"family_name,email,cc\nE,e@example.org,{EMAIL}\n", encoding="utf-8")
    info, rows = importing.open_contact_file(path)
    rows.close()
    mapping = {**importing.auto_mapping(info.headers), "cc": "cc_emails"}
    rejects = tmp_path / "rejects.csv"
    result = importing.import_contacts(path, mapping, rejects_path=rejects)
    assert (result.imported, result.rejected) == (0, 1)
    written = rejects.read_text(encoding="utf-8-sig")
    assert "not even as a copy" in written and KEY not in written.lower()
    # Whatever path put it there, a letter's copy check sees the erased hash.
    assert is_suppressed(EMAIL) and find_suppression(EMAIL.upper()) is not None
    cache = LetterCache()
    cache.preload_copies([EMAIL, "office@example.net"])
    assert cache.is_suppressed(EMAIL) and not cache.is_suppressed("office@example.net")


def test_suppressing_an_erased_address_by_hand_keeps_only_its_hash(erased: None) -> None:
    entry = suppress_address(EMAIL, "manual", note="asked again")
    db.session.commit()

    assert entry.reason == SuppressionReason.ERASED.value and entry.email == ""
    assert db.session.scalar(select(func.count(Suppression.id))) == 1
    assert traces(KEY) == []


def test_sign_on_invitations_skip_an_erased_address_re_added_behind_the_guards(
    erased: None,
) -> None:
    from campaign.services.sign_on.invitations import invite

    contact_list = ContactListFactory(contacts=["b@example.org"])
    back = _raw_insert_contact(EMAIL, KEY)
    db.session.execute(insert(list_memberships).values(list_id=contact_list.id, contact_id=back))
    sign_on = open_sign_on(CampaignFactory(recipients=["a@example.org"]).statement)
    db.session.commit()

    result = invite(sign_on, f"list:{contact_list.id}")

    assert (result.invited, result.suppressed) == (1, 1)


def test_the_launch_tests_the_contacts_own_key(app: Flask) -> None:
    # The address typed in punycode is the contact's Unicode address: the same person.
    create_contact({"email": "olga@яндекс.рф", "family_name": "Petrova"})
    db.session.commit()
    erasure.erase_person("Olga@xn--d1acpjx3f.xn--p1ai")
    db.session.commit()
    assert db.session.scalar(select(func.count(Contact.id))) == 0
    assert erased_addresses.is_erased("olga@яндекс.рф")

    # Re-added behind the guards, stored in its punycode spelling with the contact key.
    contact_list = ContactListFactory(contacts=["b@example.org"])
    back = _raw_insert_contact("olga@xn--d1acpjx3f.xn--p1ai", "olga@яндекс.рф")
    db.session.execute(insert(list_memberships).values(list_id=contact_list.id, contact_id=back))
    campaign = CampaignFactory(contact_list=contact_list)
    db.session.commit()
    assert campaigns.launch_campaign(campaign)
    db.session.commit()

    written = db.session.scalars(select(Delivery.email).where(Delivery.campaign_id == campaign.id))
    assert list(written) == ["b@example.org"]


def test_records_merged_into_theirs_go_too_with_their_other_addresses(app: Flask) -> None:
    from campaign.services.contacts.merge import merge_contacts

    olga = person(phone="+7 900 000 00 00")
    other = create_contact(
        {
            "email": "o.petrova@mail.example.net",
            "given_name": "Olga",
            "family_name": "Petrova",
            "notes": "home address: 5 Secret Lane",
        }
    )
    CampaignFactory(recipients=[other], launched=True)
    db.session.execute(update(Campaign).values(status=CampaignStatus.FINISHED.value))
    db.session.commit()
    merge_contacts(olga, other, {})
    db.session.commit()

    about = erasure.what_is_stored(EMAIL)
    assert about.merged_other == 1
    result = erasure.erase_person(EMAIL)
    db.session.commit()

    assert result.counts["merged_records"] == 1
    assert db.session.scalar(select(func.count(Contact.id))) == 0
    assert db.session.scalar(select(func.count(Delivery.id))) == 1
    assert traces(KEY, "o.petrova@mail.example.net", "Secret Lane") == []
    assert erased_addresses.is_erased("o.petrova@mail.example.net")


def test_a_missing_or_damaged_key_file_is_explained(erased: None, app: Flask) -> None:
    key_file = Path(app.config["INSTANCE_PATH"]) / "erasure_key"
    key_file.write_text("not hex\n", encoding="ascii")

    for call in (
        lambda: erasure.what_is_stored("someone@example.org"),
        lambda: erasure.erase_person("someone@example.org"),
        lambda: erased_addresses.is_erased(EMAIL),
    ):
        with pytest.raises(erased_addresses.ErasureKeyMissing, match="erasure_key file is damaged"):
            call()
        db.session.rollback()
    with pytest.raises(ContactInputError, match="erasure_key"):
        create_contact({"email": "c@example.org", "family_name": "C"})
    db.session.rollback()
    # A damaged file is never replaced by a new key (the erased hashes would be lost).
    assert key_file.read_text(encoding="ascii") == "not hex\n"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_lost_key_file_is_never_replaced_while_erasures_depend_on_it(
    erased: None,
    app: Flask,
    client: Any,
    login: Any,
) -> None:
    key_file = Path(app.config["INSTANCE_PATH"]) / "erasure_key"
    kept = key_file.read_bytes()
    key_file.unlink()  # a restore that left the file behind
    login(Role.ADMIN)

    export = client.post(
        "/privacy/exports/", data={"email": "someone@example.net", "write_empty": "1"}
    )
    assert export.status_code == 503
    assert "erasure_key file to recognise them with" in export.get_data(as_text=True)
    erase = client.post(
        "/privacy/erase/confirm",
        data={"email": "boris@example.org", "confirm_email": "boris@example.org"},
    )
    assert erase.status_code == 503
    assert "erasure_key file to recognise them with" in erase.get_data(as_text=True)
    with pytest.raises(erased_addresses.ErasureKeyMissing, match="erasure_key"):
        erasure.erase_person("boris@example.org", keep_hash_if_absent=True)
    db.session.rollback()
    assert not key_file.exists()  # no fresh key that would recognise none of them
    assert db.session.scalar(select(func.count(SubjectExport.id))) == 0

    key_file.write_bytes(kept)  # the file restored from the backup
    with pytest.raises(ContactInputError, match="erased on request"):
        person()
    db.session.rollback()
    outcomes = importing.upsert_contacts([{"email": EMAIL, "family_name": "Petrova"}])
    assert "erased on request" in outcomes[0].errors[0].message


def test_after_an_erasure_sqlite_keeps_no_copy_in_its_index_nor_its_log(app: Flask) -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's search index and write-ahead log (PostgreSQL: decision 0090)")
    create_contact({"email": "qzxjvwk@example.org", "family_name": "Qzxjvwkova"})
    db.session.commit()

    erasure.erase_person("qzxjvwk@example.org")
    db.session.commit()
    erasure.scrub_storage()

    blocks = [
        bytes(row[0])
        for row in db.session.execute(text("SELECT block FROM contacts_search_data"))
        if row[0]
    ]
    assert not any(b"zxj" in block or b"jvw" in block for block in blocks)
    database = Path(str(db.engine.url.database))
    wal = database.with_name(database.name + "-wal")
    assert not wal.exists() or b"qzxjvwk" not in wal.read_bytes()
    assert b"qzxjvwk" not in database.read_bytes()
    assert db.session.execute(text("PRAGMA secure_delete")).scalar() == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_write_ahead_log_a_reader_holds_is_logged_as_not_emptied(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    create_contact({"email": "qzxjvwk@example.org", "family_name": "Qzxjvwkova"})
    db.session.commit()
    erasure.erase_person("qzxjvwk@example.org")
    db.session.execute(text("PRAGMA busy_timeout = 0"))  # answer at once, not in 5 s
    db.session.commit()
    reader = sqlite3.connect(str(db.engine.url.database), isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM contacts").fetchone()  # holds its snapshot
        with caplog.at_level("WARNING", logger="campaign.services.privacy.erasure"):
            erasure.scrub_storage()
    finally:
        reader.close()
    assert "the write-ahead log could not be emptied now" in caplog.text


def test_an_import_file_naming_them_is_deleted_and_a_refused_row_keeps_no_cells(
    app: Flask, tmp_path: Path
) -> None:
    from campaign.models import ContactImport

    upload = tmp_path / "upload.csv"
    upload.write_text(f"family_name,email\nPetrova,{EMAIL}\nOther,b@example.org\n", "utf-8")
    old_rejects = tmp_path / "old-rejects.csv"
    old_rejects.write_text(f"line,column,reason,email\n3,email,duplicate,{KEY}\n", "utf-8")
    others = tmp_path / "others.csv"
    others.write_text("family_name,email\nOther,c@example.org\n", "utf-8")
    for stored, rejects in ((upload, old_rejects), (others, None)):
        db.session.add(
            ContactImport(
                original_filename=stored.name,
                stored_path=str(stored),
                rejects_path=str(rejects or ""),
            )
        )
    person()
    db.session.commit()

    result = erasure.erase_person(EMAIL)
    db.session.commit()

    assert result.counts["import_files"] == 2
    assert not upload.exists() and not old_rejects.exists() and others.exists()
    # A later import of them: the rejects file keeps the line and the reason, no cells.
    again = tmp_path / "again.csv"
    again.write_text(f"given_name,family_name,email\nOlga,Petrova,{EMAIL}\n", "utf-8")
    info, rows = importing.open_contact_file(again)
    rows.close()
    rejects = tmp_path / "rejects.csv"
    importing.import_contacts(again, importing.auto_mapping(info.headers), rejects_path=rejects)
    lines = rejects.read_text(encoding="utf-8-sig").splitlines()
    assert lines[1].startswith("2,email,") and "erased on request" in lines[1]
    assert lines[1].endswith(",,,")  # given_name, family_name, email: blank
    assert "olga" not in lines[1].lower() and "petrova" not in lines[1].lower()


def _reply(sender: str, in_reply_to: str, body: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: office@example.org\r\nSubject: Re: our letter\r\n"
        f"Message-ID: <r{abs(hash((sender, body)))}@mail.example>\r\n"
        f"In-Reply-To: {in_reply_to}\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def test_a_late_reply_about_an_erased_person_stores_nothing_naming_them(app: Flask) -> None:
    from campaign.models import InboundMessage
    from campaign.services.replies.intake import record_inbound

    olga = person()
    campaign = CampaignFactory(recipients=[olga], launched=True)
    finish(campaign)
    message_id = db.session.scalar(select(Delivery.message_id))
    db.session.commit()
    erasure.erase_person(EMAIL)
    db.session.commit()

    # Matched to the anonymised letter, and one from the erased address matched to nothing.
    record_inbound(_reply(f"{NAME} <{EMAIL}>", str(message_id), "I live at 5 Secret Lane"))
    record_inbound(_reply(EMAIL.upper(), "<unknown@nowhere.example>", "Secret Lane again"))
    db.session.commit()

    assert db.session.scalar(select(func.count(InboundMessage.id))) == 2
    assert traces(KEY, "Secret Lane", NAME) == []


def test_a_campaign_still_to_send_a_frozen_version_naming_them_is_listed(
    app: Flask,
    client: Any,
    login: Any,
) -> None:
    from campaign.services.sign_on import moderation

    campaign = CampaignFactory(name="Paused appeal", recipients=["b@example.org"])
    sign_on = open_sign_on(campaign.statement)
    signature = _her_signature(sign_on)
    db.session.add(signature)
    db.session.flush()
    moderation.approve(signature)
    db.session.commit()
    assert campaigns.launch_campaign(campaign)
    campaign.status = CampaignStatus.PAUSED.value
    db.session.commit()

    about = erasure.what_is_stored(EMAIL)

    assert about.still_naming == [(campaign.id, "Paused appeal")]
    assert "“Paused appeal”" in erasure.still_naming_notice(about)
    assert erasure.refusal(about) == ""
    from campaign.models import Role
    from tests.pages import element_text, html_of

    login(Role.ADMIN)
    page = html_of(client.post("/privacy/erase/", data={"email": EMAIL}))
    assert "“Paused appeal”" in element_text(page, "erase-still-naming")
    assert "erase-confirm" in page


def test_several_campaigns_sending_are_named_in_the_plural(app: Flask) -> None:
    olga = person()
    for name in ("First appeal", "Second appeal"):
        CampaignFactory(name=name, recipients=[olga], launched=True)
    db.session.commit()

    message = erasure.refusal(erasure.what_is_stored(EMAIL))

    assert message.startswith("The campaigns “First appeal”")
    assert "are sending now" in message


def test_erasing_an_erased_address_again_records_nothing_new(erased: None) -> None:
    entries = db.session.scalar(select(func.count(AuditEvent.id)))

    result = erasure.erase_person(EMAIL.upper())
    db.session.commit()

    assert result.already_erased
    assert db.session.scalar(select(func.count(AuditEvent.id))) == entries
    assert db.session.scalar(select(func.count(Suppression.id))) == 1


def test_an_erasure_racing_a_launch_waits_for_it_then_refuses(app: Flask) -> None:
    """Two sessions on PostgreSQL: the launch has written its letters, uncommitted; the
    erasure waits on the person's contact row, then sees the campaign sending."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite takes the database's write lock first)")
    import threading
    import time

    olga = person()
    contact_list = ContactListFactory(contacts=[olga, "b@example.org"])
    campaign = CampaignFactory(name="Racing appeal", contact_list=contact_list)
    db.session.commit()
    campaign_id = campaign.id
    launched, go_on = threading.Event(), threading.Event()
    outcome: list[str] = []

    def launch() -> None:
        with app.app_context():
            campaigns.launch_campaign(db.session.get(Campaign, campaign_id))
            db.session.flush()
            launched.set()
            go_on.wait(20)
            db.session.commit()

    def erase() -> None:
        with app.app_context():
            try:
                erasure.erase_person(EMAIL)
                db.session.commit()
                outcome.append("erased")
            except erasure.ErasureError as error:
                db.session.rollback()
                outcome.append(error.message)

    launcher = threading.Thread(target=launch)
    launcher.start()
    assert launched.wait(20)
    eraser = threading.Thread(target=erase)
    eraser.start()
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    with db.engine.connect() as watcher:
        for _ in range(400):  # until the erasure waits on the launch's lock (20 s at most)
            if watcher.execute(text(waiting)).scalar() or not eraser.is_alive():
                break
            time.sleep(0.05)
    go_on.set()
    launcher.join(20)
    eraser.join(20)

    assert len(outcome) == 1 and "“Racing appeal”" in outcome[0], outcome
    db.session.expire_all()
    assert find_by_email(EMAIL) is not None
    assert not erased_addresses.is_erased(EMAIL)


def test_a_launch_overlapping_an_erasure_is_undone_and_says_why(app: Flask) -> None:
    """Two sessions on PostgreSQL: the erasure has deleted the person's contact, uncommitted;
    the launch read the audience before, and its letter to them fails the ledger's key."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite takes the database's write lock first)")
    import threading
    import time

    olga = person()
    contact_list = ContactListFactory(contacts=[olga, "b@example.org"])
    campaign = CampaignFactory(name="Overlapping appeal", contact_list=contact_list)
    db.session.commit()
    campaign_id = campaign.id
    erased_flushed, go_on = threading.Event(), threading.Event()
    outcome: list[str] = []

    def erase() -> None:
        with app.app_context():
            erasure.erase_person(EMAIL)
            db.session.flush()
            erased_flushed.set()
            go_on.wait(20)
            db.session.commit()

    def launch() -> None:
        with app.app_context():
            try:
                campaigns.launch_campaign(db.session.get(Campaign, campaign_id))
                db.session.commit()
                outcome.append("launched")
            except campaigns.CampaignError as error:
                db.session.rollback()
                outcome.append(str(error.message))

    eraser = threading.Thread(target=erase)
    eraser.start()
    assert erased_flushed.wait(20)
    launcher = threading.Thread(target=launch)
    launcher.start()
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    with db.engine.connect() as watcher:
        for _ in range(400):  # until the launch waits on the erasure's lock (20 s at most)
            if watcher.execute(text(waiting)).scalar() or not launcher.is_alive():
                break
            time.sleep(0.05)
    go_on.set()
    eraser.join(20)
    launcher.join(20)

    assert outcome == [
        "A contact of this audience was erased or deleted while the campaign was being "
        "launched; nothing was sent. Launch it again."
    ]
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Delivery.id))) == 0
    assert db.session.get(Campaign, campaign_id).status == CampaignStatus.DRAFT.value
    assert erased_addresses.is_erased(EMAIL)
