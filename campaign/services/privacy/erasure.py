"""Erasure on request: forget a person by address, keep only a keyed hash so nobody writes
to them again, and keep the ledger's counts right (decision 0090).

What goes: their contact records (the trash too) and list memberships, their sign-on
signatures (and, from the statements' current co-signer lists, the individual signatory
each approved signature became), the bodies, raw copies and attachments of their replies and
bounces, our answers to them, their tracking events, the stored copies of the letters sent
to them, invitations, any plain entry of the address on the suppression list, and the
address or name wherever the audit log, webhook payloads, API replay answers and pre-send
results held it. What stays: the ledger's rows, anonymised (no address, no contact, no
copy), so every campaign's figures are unchanged; earlier statement versions and letters
already sent to others that name them as co-signers (the record of what others received).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import (
    String,
    Table,
    Text,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from campaign.extensions import db
from campaign.models import (
    ApiIdempotency,
    AuditEvent,
    Campaign,
    CampaignStatus,
    CampaignStep,
    Contact,
    ContactImport,
    Delivery,
    DeliveryStatus,
    InboundMessage,
    InboundNote,
    PresendRun,
    ReplyAnswer,
    Schedule,
    ScheduleKind,
    Signatory,
    SignatoryKind,
    Signature,
    SignOnInvitation,
    Statement,
    SubjectExport,
    Suppression,
    SuppressionReason,
    TrackingEvent,
    User,
    WebhookEvent,
    list_memberships,
    utcnow,
)
from campaign.services.accounts.audit import record_event
from campaign.services.contacts.importing import open_contact_file
from campaign.services.contacts.suppressions import mask_email
from campaign.services.contacts.trash import cancel_open_letters
from campaign.services.privacy import erased_addresses, subject_export
from campaign.services.statements.statements import lock_signatories, record_version

logger = logging.getLogger(__name__)

ERASED = "[erased]"
# A name shorter than this is not searched for in the audit log: "Li" would match too much.
MIN_NAME = 4
CHUNK = 500


class ErasureError(ValueError):
    """An erasure cannot be done as asked; the message says why in the reader's language."""

    def __init__(self, message: str, field: str = "email") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass
class StoredAbout:
    """What the database holds about one address: what an erasure would remove."""

    email_key: str
    contact_ids: list[int] = field(default_factory=list)
    trashed_contacts: int = 0
    # Records merged into theirs (recursively) that carry other addresses: they go too, and
    # those addresses are hashed as well (decision 0090).
    merged_other: int = 0
    other_keys: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    lists: int = 0
    signatures: int = 0
    signatories: int = 0
    letters: int = 0
    replies: int = 0
    tracking_events: int = 0
    # Campaigns sending now with a letter to them: the erasure waits for these.
    sending: list[tuple[int, str]] = field(default_factory=list)
    # Campaigns paused or with follow-ups still to go that will send a frozen statement
    # version naming them as a co-signer: listed, not refused.
    still_naming: list[tuple[int, str]] = field(default_factory=list)
    is_erased: bool = False

    @property
    def keys(self) -> list[str]:
        return [self.email_key, *self.other_keys]

    @property
    def is_stored(self) -> bool:
        return bool(self.contact_ids or self.signatures or self.letters or self.replies)


@dataclass
class ErasureResult:
    was_stored: bool
    hash_prefix: str
    counts: dict[str, int]
    # Erased before and nothing stored since: nothing was done, nothing recorded.
    already_erased: bool = False


def _key_of(email: str) -> str:
    key = erased_addresses.address_key(email)
    local, at, domain = key.rpartition("@")
    if not at or not local or not domain or "\x00" in key:
        raise ErasureError(
            _("Email: %(address)s is not an email address", address=repr(email.strip()))
        )
    return key


def _contacts(key: str) -> list[Contact]:
    """Their records, live and in the trash, and every record merged into one of them
    (recursively: a merge of a merge), whatever address it carries."""
    # Live ones by the partial unique index, trashed ones by the trash's own index.
    live = db.session.scalars(
        select(Contact).where(Contact.email_key == key, Contact.deleted_at.is_(None))
    )
    trashed = db.session.scalars(
        select(Contact).where(Contact.deleted_at.is_not(None), Contact.email_key == key)
    )
    found = [*live, *trashed]
    seen = {c.id for c in found}
    wanted = list(seen)
    while wanted:
        merged = [
            c
            for c in db.session.scalars(select(Contact).where(Contact.merged_into_id.in_(wanted)))
            if c.id not in seen
        ]
        seen.update(c.id for c in merged)
        found += merged
        wanted = [c.id for c in merged]
    return found


def _lock(key: str) -> None:
    """Hold their contact rows (PostgreSQL) or the database's write lock (SQLite) before
    anything is read: a launch that inserted letters to them finishes first and is then
    seen as sending; one that starts later waits for the erasure (decision 0090)."""
    if db.session.get_bind().dialect.name == "postgresql":
        ids = _ids(select(Contact.id).where(Contact.email_key == key).with_for_update())
        while ids:
            ids = _ids(select(Contact.id).where(Contact.merged_into_id.in_(ids)).with_for_update())
    else:
        # A write that changes nothing: the transaction now holds SQLite's write lock.
        db.session.execute(update(Contact).where(Contact.id == -1).values(id=Contact.id))


def _names(contacts: Iterable[Contact], signatures: Iterable[Signature]) -> list[str]:
    found: list[str] = []
    for contact in contacts:
        for given, family in (
            (contact.given_name, contact.family_name),
            (contact.given_name_alt, contact.family_name_alt),
            (contact.given_name_en, contact.family_name_en),
            (contact.given_name_fr, contact.family_name_fr),
            (contact.given_name_ru, contact.family_name_ru),
        ):
            found += [" ".join(p for p in (given, family) if p), " ".join((family, given))]
        found += [contact.name_dative]
    found += [s.name for s in signatures if s.kind == SignatoryKind.INDIVIDUAL.value]
    names = {" ".join(n.split()) for n in found}
    return sorted((n for n in names if len(n) >= MIN_NAME), key=len, reverse=True)


def _delivery_clause(keys: Sequence[str], contact_ids: Sequence[int]) -> Any:
    by_address = func.lower(Delivery.email).in_(keys)
    return or_(Delivery.contact_id.in_(contact_ids), by_address) if contact_ids else by_address


def _signatures(keys: Sequence[str], typed: str) -> list[Signature]:
    wanted = {*keys, typed.strip().lower()}
    return list(db.session.scalars(select(Signature).where(Signature.email_key.in_(wanted))))


def _inbound_clause(keys: Sequence[str], delivery_ids: Sequence[int]) -> Any:
    from_them = func.lower(InboundMessage.from_address).in_(keys)
    if not delivery_ids:
        return from_them
    return or_(InboundMessage.delivery_id.in_(delivery_ids), from_them)


def _ids(statement: Any) -> list[int]:
    return [int(i) for i in db.session.scalars(statement)]


def what_is_stored(email: str) -> StoredAbout:
    """What an erasure of `email` would remove (nothing is changed)."""
    key = _key_of(email)
    contacts = _contacts(key)
    contact_ids = [c.id for c in contacts]
    other_keys = sorted({c.email_key for c in contacts} - {key})
    keys = [key, *other_keys]
    signatures = _signatures(keys, email)
    delivery_ids = _ids(select(Delivery.id).where(_delivery_clause(keys, contact_ids)))
    about = StoredAbout(
        email_key=key,
        contact_ids=contact_ids,
        trashed_contacts=sum(1 for c in contacts if c.deleted_at is not None),
        merged_other=sum(1 for c in contacts if c.email_key != key),
        other_keys=other_keys,
        names=_names(contacts, signatures),
        signatures=len(signatures),
        signatories=sum(1 for s in signatures if s.signatory_id is not None),
        letters=len(delivery_ids),
        is_erased=erased_addresses.find_erased_entry(email) is not None,
    )
    if contact_ids:
        about.lists = int(
            db.session.scalar(
                select(func.count())
                .select_from(list_memberships)
                .where(list_memberships.c.contact_id.in_(contact_ids))
            )
            or 0
        )
    about.replies = int(
        db.session.scalar(
            select(func.count(InboundMessage.id)).where(_inbound_clause(keys, delivery_ids))
        )
        or 0
    )
    for start in range(0, len(delivery_ids), CHUNK):
        chunk = delivery_ids[start : start + CHUNK]
        about.tracking_events += int(
            db.session.scalar(
                select(func.count(TrackingEvent.id)).where(TrackingEvent.delivery_id.in_(chunk))
            )
            or 0
        )
    about.sending = [
        (int(row.id), str(row.name))
        for row in db.session.execute(
            select(Campaign.id, Campaign.name)
            .where(
                Campaign.id.in_(
                    select(Delivery.campaign_id).where(_delivery_clause(keys, contact_ids))
                ),
                or_(
                    Campaign.status == CampaignStatus.SENDING.value,
                    # A paused campaign's batch may still hold their letter (claimed).
                    Campaign.id.in_(
                        select(Delivery.campaign_id).where(
                            _delivery_clause(keys, contact_ids),
                            Delivery.status == DeliveryStatus.SENDING.value,
                        )
                    ),
                ),
            )
            .order_by(Campaign.id)
        )
    ]
    about.still_naming = _still_naming(signatures)
    return about


def _still_naming(signatures: Sequence[Signature]) -> list[tuple[int, str]]:
    """Campaigns that will still send a frozen statement version naming them as a
    co-signer: paused or sending ones, and those with follow-ups still to go."""
    statement_ids = list(
        db.session.scalars(
            select(Signatory.statement_id).where(
                Signatory.id.in_(
                    [
                        s.signatory_id
                        for s in signatures
                        if s.signatory_id is not None and s.kind == SignatoryKind.INDIVIDUAL.value
                    ]
                )
            )
        )
    )
    if not statement_ids:
        return []
    frozen = (Campaign.statement_id.in_(statement_ids)) & Campaign.status.in_(
        [CampaignStatus.PAUSED.value, CampaignStatus.SENDING.value]
    )
    follow_ups = Campaign.id.in_(
        select(Schedule.campaign_id).where(
            Schedule.kind == ScheduleKind.FOLLOW_UP.value,
            Schedule.is_enabled.is_(True),
            Schedule.next_run_at.is_not(None),
            or_(
                Campaign.statement_id.in_(statement_ids),
                Schedule.step_id.in_(
                    select(CampaignStep.id).where(CampaignStep.statement_id.in_(statement_ids))
                ),
            ),
        )
    )
    return [
        (int(row.id), str(row.name))
        for row in db.session.execute(
            select(Campaign.id, Campaign.name)
            .where(Campaign.statement_version_id.is_not(None), or_(frozen, follow_ups))
            .order_by(Campaign.id)
        )
    ]


def _campaign_names(campaigns: Sequence[tuple[int, str]]) -> str:
    return ", ".join(f"“{name}” (#{cid})" for cid, name in campaigns)


def refusal(about: StoredAbout) -> str:
    """Why the erasure must wait, in words; "" when it may go ahead."""
    if not about.sending:
        return ""
    return ngettext(
        "The campaign %(campaigns)s is sending now, with a letter to this person: pause it "
        "or wait until it has finished, then erase.",
        "The campaigns %(campaigns)s are sending now, with letters to this person: pause "
        "them or wait until they have finished, then erase.",
        len(about.sending),
        campaigns=_campaign_names(about.sending),
    )


def still_naming_notice(about: StoredAbout) -> str:
    """Campaigns that will still send a frozen version naming them, in words ("" if none)."""
    if not about.still_naming:
        return ""
    return ngettext(
        "The campaign %(campaigns)s will still send a frozen version of a statement that "
        "names this person as a co-signer (it is paused or has follow-ups to go): the "
        "erasure does not change it; cancel it or its follow-ups if that must not happen.",
        "The campaigns %(campaigns)s will still send frozen versions of a statement that "
        "name this person as a co-signer (they are paused or have follow-ups to go): the "
        "erasure does not change them; cancel them or their follow-ups if that must not "
        "happen.",
        len(about.still_naming),
        campaigns=_campaign_names(about.still_naming),
    )


def erase_person(
    email: str, *, actor: User | None = None, keep_hash_if_absent: bool = True
) -> ErasureResult:
    """Erase everything stored about `email` and put its keyed hash on the suppression list;
    flush, the caller commits (then calls `scrub_storage`). Raises ErasureError (refused
    while a campaign to them is sending, or not an address).

    An address nothing is stored about gets the hash only (when `keep_hash_if_absent`), so
    the person is still never written to (decision 0090). An address already erased, with
    nothing stored since, is left as it is and nothing new is recorded.
    """
    _lock(_key_of(email))
    # Read under the lock: a launch that got there first is now seen as sending.
    about = what_is_stored(email)
    why_not = refusal(about)
    if why_not:
        raise ErasureError(why_not)
    key = about.email_key
    keys = about.keys
    counts: dict[str, int] = {}
    if about.is_erased and not about.is_stored:
        entry = erased_addresses.find_erased_entry(email)
        prefix = entry.email_key.removeprefix(erased_addresses.PREFIX)[:12] if entry else ""
        return ErasureResult(False, prefix, counts, already_erased=True)
    if about.is_stored or keep_hash_if_absent:
        secret = erased_addresses.erasure_key(create=True)
        assert secret is not None
        hashed = erased_addresses.hashed_key(key, secret)
    else:
        return ErasureResult(False, "", counts)
    needles = _needles(email, keys, about.names)
    contact_ids = about.contact_ids
    signatures = _signatures(keys, email)
    delivery_ids = _ids(select(Delivery.id).where(_delivery_clause(keys, contact_ids)))

    # The ledger: letters still to go are cancelled (as the trash does), then every row loses
    # the address, the contact, the SMTP answer (which may quote the address) and the copy.
    if delivery_ids:
        for start in range(0, len(delivery_ids), CHUNK):
            cancel_open_letters(Delivery.id.in_(delivery_ids[start : start + CHUNK]))
    counts["letters_anonymised"] = _anonymise_deliveries(delivery_ids)
    counts["tracking_events"] = _delete_in(TrackingEvent.delivery_id, delivery_ids)
    counts["replies"] = _erase_replies(keys, delivery_ids, contact_ids)
    counts["signatures"], counts["signatories"] = _erase_signatures(signatures, actor)
    counts["invitations"] = _delete_where(
        SignOnInvitation,
        or_(
            SignOnInvitation.contact_id.in_(contact_ids),
            func.lower(SignOnInvitation.email).in_(keys),
        ),
    )
    counts["lists"] = about.lists
    counts["exports"] = _remove_exports(contact_ids, keys)
    counts["contacts"] = _erase_contacts(contact_ids, keys)
    counts["merged_records"] = about.merged_other
    # A letter row a launch wrote by address alone after the reads above: gone too.
    late = _ids(select(Delivery.id).where(func.lower(Delivery.email).in_(keys)))
    if late:
        cancel_open_letters(Delivery.id.in_(late))
        counts["letters_anonymised"] += _anonymise_deliveries(late)
        _delete_in(TrackingEvent.delivery_id, late)
    counts["import_files"] = _remove_import_files(keys)
    # Any plain entry of the addresses (unsubscribed, bounced, by hand) gives way to the hash.
    plain_ids = _ids(select(Suppression.id).where(Suppression.email_key.in_(keys)))
    db.session.execute(delete(Suppression).where(Suppression.email_key.in_(keys)))
    counts["audit_entries"] = _rewrite_json(
        AuditEvent.__table__,
        "detail",
        needles,
        _audit_targets(contact_ids, [s.id for s in signatures], plain_ids),
        # Entries about their records also lose the masked address ("an***@example.org")
        # and one-word names, which elsewhere could be anyone's.
        _by_length(
            [*needles, *(mask_email(k).lower() for k in keys), *(n.lower() for n in about.names)]
        ),
    )
    counts["webhook_payloads"] = _rewrite_json(WebhookEvent.__table__, "payload", needles)
    counts["presend_results"] = _rewrite_json(PresendRun.__table__, "result", needles)
    counts["api_replays"] = _delete_where(
        ApiIdempotency, or_(*(_like(ApiIdempotency.response_body, n) for n in needles))
    )
    for other in about.other_keys:
        _add_hash(erased_addresses.hashed_key(other, secret), actor)
    _add_hash(hashed, actor)
    db.session.flush()
    record_event(
        "person.erase",
        target_type="suppression",
        target_id=db.session.scalar(select(Suppression.id).where(Suppression.email_key == hashed))
        or "",
        actor=actor,
        # Never the address or a name: a short prefix of the keyed hash, ids and counts.
        detail={
            "hash_prefix": hashed.removeprefix(erased_addresses.PREFIX)[:12],
            "contact_ids": contact_ids,
            "was_stored": about.is_stored,
            **counts,
        },
    )
    return ErasureResult(about.is_stored, hashed.removeprefix(erased_addresses.PREFIX)[:12], counts)


def scrub_storage() -> None:
    """After an erasure is committed: SQLite's search index drops the erased person's
    trigrams (FTS5 'optimize' rewrites its segments) and the write-ahead log is emptied
    into the database file, whose freed pages secure_delete zeroes (decision 0090).
    PostgreSQL: nothing here (VACUUM and WAL recycling, see the decision)."""
    if db.session.get_bind().dialect.name != "sqlite":
        return
    try:
        db.session.execute(text("INSERT INTO contacts_search(contacts_search) VALUES('optimize')"))
        db.session.commit()
        busy, _pages, _moved = db.session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).one()
        db.session.commit()
        if busy:
            # A reader (a page, a worker) held the log: its pages stay until a later checkpoint.
            logger.warning(
                "erasure: the write-ahead log could not be emptied now (a reader held it); "
                "SQLite's next checkpoint does it"
            )
    except SQLAlchemyError:
        # The erasure itself is committed; a busy database only delays this tidying (the
        # next erasure's, or SQLite's own checkpoints and merges, do it).
        db.session.rollback()
        logger.warning("erasure: the search index and write-ahead log could not be tidied now")


# --- the parts ------------------------------------------------------------------------------


def _needles(email: str, keys: Sequence[str], names: list[str]) -> list[str]:
    """What is looked for (and replaced by "[erased]") everywhere: the addresses in their
    spellings and the person's names of two words or more ("Anna" alone is too common)."""
    return _by_length([*keys, email.strip().lower(), *(n.lower() for n in names if " " in n)])


def _by_length(needles: list[str]) -> list[str]:
    # Longest first: "olga petrova" is replaced before a shorter needle inside it.
    return sorted({n for n in needles if n}, key=len, reverse=True)


def _anonymise_deliveries(delivery_ids: list[int]) -> int:
    done = 0
    for start in range(0, len(delivery_ids), CHUNK):
        chunk = delivery_ids[start : start + CHUNK]
        result = db.session.execute(
            update(Delivery)
            .where(Delivery.id.in_(chunk))
            .values(
                email="",
                contact_id=None,
                last_reply="",
                message_blob=None,
                # The unsubscribe link in their old letters now leads nowhere (the address
                # it would suppress is gone; the hash already stops every letter).
                unsubscribe_token=literal("erased-") + cast(Delivery.id, String),
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        done += int(getattr(result, "rowcount", 0) or 0)
    return done


def _delete_in(column: Any, ids: list[int]) -> int:
    done = 0
    for start in range(0, len(ids), CHUNK):
        result = db.session.execute(
            delete(column.class_)
            .where(column.in_(ids[start : start + CHUNK]))
            .execution_options(synchronize_session=False)
        )
        done += int(getattr(result, "rowcount", 0) or 0)
    return done


def _delete_where(model: Any, where: Any) -> int:
    result = db.session.execute(
        delete(model).where(where).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _erase_replies(keys: Sequence[str], delivery_ids: list[int], contact_ids: list[int]) -> int:
    """Their replies, auto-replies and bounces keep their row (the kind, the date: the
    dashboard's counts) without body, raw copy, attachments, sender or notes."""
    inbound_ids = _ids(select(InboundMessage.id).where(_inbound_clause(keys, delivery_ids)))
    # Bounces that list them among other recipients lose them from the list only.
    listed = db.session.execute(
        select(InboundMessage.id, InboundMessage.bounce_recipients).where(
            or_(*(_like(cast(InboundMessage.bounce_recipients, Text), key) for key in keys)),
            InboundMessage.id.not_in(inbound_ids) if inbound_ids else true(),
        )
    ).all()
    for row in listed:
        kept = [a for a in row.bounce_recipients or [] if str(a).strip().lower() not in keys]
        db.session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == row.id)
            .values(bounce_recipients=kept)
            .execution_options(synchronize_session=False)
        )
    for start in range(0, len(inbound_ids), CHUNK):
        chunk = inbound_ids[start : start + CHUNK]
        db.session.execute(
            delete(InboundNote)
            .where(InboundNote.inbound_id.in_(chunk))
            .execution_options(synchronize_session=False)
        )
        db.session.execute(
            update(InboundMessage)
            .where(InboundMessage.id.in_(chunk))
            .values(
                from_address="",
                subject=ERASED,
                text="",
                html="",
                raw_blob=None,
                attachments=[],
                bounce_recipients=[],
                problems=[],
            )
            .execution_options(synchronize_session=False)
        )
    answers = or_(func.lower(ReplyAnswer.to_address).in_(keys))
    if contact_ids:
        answers = or_(answers, ReplyAnswer.contact_id.in_(contact_ids))
    if inbound_ids:
        answers = or_(answers, ReplyAnswer.inbound_id.in_(inbound_ids))
    db.session.execute(
        update(ReplyAnswer)
        .where(answers)
        .values(to_address="", subject=ERASED, body_text="", error="", message_blob=None)
        .execution_options(synchronize_session=False)
    )
    return len(inbound_ids)


def _erase_signatures(signatures: list[Signature], actor: User | None) -> tuple[int, int]:
    """Delete their signatures; an approved individual's entry leaves the statement's current
    co-signer list (a new version records it, without the name)."""
    signatory_ids = [
        s.signatory_id
        for s in signatures
        if s.signatory_id is not None and s.kind == SignatoryKind.INDIVIDUAL.value
    ]
    for signature in signatures:
        db.session.delete(signature)
    db.session.flush()
    removed = 0
    if signatory_ids:
        by_statement: dict[int, list[int]] = {}
        for signatory in db.session.scalars(
            select(Signatory).where(Signatory.id.in_(signatory_ids))
        ):
            by_statement.setdefault(signatory.statement_id, []).append(signatory.id)
        for statement_id, ids in by_statement.items():
            statement = db.session.get(Statement, statement_id)
            if statement is None:
                continue
            lock_signatories(statement)
            for signatory in [s for s in statement.signatories if s.id in ids]:
                statement.signatories.remove(signatory)
                removed += 1
            for position, signatory in enumerate(statement.signatories):
                signatory.position = position
            db.session.flush()
            record_version(statement, "signatory removed on an erasure request", actor=actor)
    return len(signatures), removed


def _remove_exports(contact_ids: list[int], keys: Sequence[str]) -> int:
    """Access-request exports of them: the ZIP (everything about them) is deleted now and a
    job still running is cut off (its run key no longer matches, decision 0089)."""
    mine: Any = func.lower(SubjectExport.email).in_(keys)
    if contact_ids:
        mine = or_(mine, SubjectExport.contact_id.in_(contact_ids))
    exports = {
        export.id: export for export in db.session.scalars(select(SubjectExport).where(mine))
    }
    # Finished exports keep only the keyed hash of the address (decision 0089).
    for key in keys:
        exports.update((export.id, export) for export in subject_export.exports_for_key(key))
    for export in exports.values():
        export.run_key = ""
        subject_export.remove_export(export)
    return len(exports)


def _erase_contacts(contact_ids: list[int], keys: Sequence[str]) -> int:
    if contact_ids:
        db.session.execute(
            delete(list_memberships).where(list_memberships.c.contact_id.in_(contact_ids))
        )
        db.session.execute(
            delete(Contact)
            .where(Contact.id.in_(contact_ids))
            .execution_options(synchronize_session=False)
        )
    # Another contact that copies them in (a secretariat's cc) stops doing so.
    for other in db.session.scalars(
        select(Contact).where(or_(*(_like(Contact.cc_emails, key) for key in keys)))
    ):
        other.cc_emails = " ".join(a for a in other.cc_emails.split() if a.lower() not in keys)
    return len(contact_ids)


def _remove_import_files(keys: Sequence[str]) -> int:
    """Uploaded files and rejects files of imports that hold one of the addresses are
    deleted (the import's row and counts stay; its rejects download is gone): a file is
    not rewritten, so a half-rewritten copy can never be left behind (decision 0090)."""
    removed = 0
    for record in db.session.scalars(select(ContactImport)):
        paths = [Path(p) for p in (record.stored_path, record.rejects_path) if p]
        if not any(_file_holds(path, record.original_filename, keys) for path in paths):
            continue
        for path in paths:
            if path.exists():
                path.unlink(missing_ok=True)
                removed += 1
        record.rejects_path = ""
    return removed


def _file_holds(path: Path, filename: str, keys: Sequence[str]) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if not data.startswith(b"PK"):
        # CSV and text: in whatever encoding it came, an ASCII address is the same bytes; a
        # Unicode one is looked for as UTF-8 and as UTF-16 (Excel's "Unicode text").
        lowered = data.lower()
        return any(
            form in lowered for key in keys for form in (key.encode(), key.encode("utf-16-le"))
        )
    # A workbook (zipped XML): its cells are read.
    try:
        _info, rows = open_contact_file(path, filename=filename)
    except Exception:  # an unreadable workbook: deleted, to be sure
        return True
    try:
        for row in rows:
            if any(any(key in str(cell).lower() for key in keys) for cell in row.cells):
                return True
    finally:
        rows.close()
    return False


def _add_hash(hashed: str, actor: User | None) -> None:
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    db.session.execute(
        insert(Suppression)
        .values(
            email_key=hashed,
            email="",
            reason=SuppressionReason.ERASED.value,
            note="",
            campaign_id=None,
            created_by_id=actor.id if actor else None,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["email_key"])
    )


def _like(column: Any, needle: str) -> Any:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(f"%{escaped}%", escape="\\")


def _json_forms(needle: str) -> set[str]:
    # JSON columns are stored by json.dumps: non-ASCII names as \u escapes.
    return {needle, json.dumps(needle)[1:-1].lower()}


def _audit_targets(
    contact_ids: list[int], signature_ids: list[int], suppression_ids: list[int]
) -> list[Any]:
    targets = []
    for kind, ids in (
        ("contact", contact_ids),
        ("signature", signature_ids),
        ("suppression", suppression_ids),
    ):
        if ids:
            targets.append(
                (AuditEvent.target_type == kind) & AuditEvent.target_id.in_([str(i) for i in ids])
            )
    return targets


def _redact(value: Any, needles: list[str]) -> Any:
    if isinstance(value, str):
        lowered = value.lower()
        for needle in needles:
            at = lowered.find(needle)
            while at >= 0:
                value = value[:at] + ERASED + value[at + len(needle) :]
                lowered = value.lower()
                at = lowered.find(needle, at + len(ERASED))
        return value
    if isinstance(value, list):
        return [_redact(v, needles) for v in value]
    if isinstance(value, dict):
        return {k: _redact(v, needles) for k, v in value.items()}
    return value


def _rewrite_json(
    table: Table,
    column: str,
    needles: list[str],
    targets: Sequence[Any] = (),
    targeted_needles: list[str] | None = None,
) -> int:
    """Replace the needles by "[erased]" in one JSON column (`targeted_needles` in the rows
    `targets` selects), with Core UPDATEs: the audit log's model refuses changes through the
    ORM, and erasure is the one change it takes (decision 0090)."""
    target = table.c[column]
    wanted = [_like(cast(target, Text), form) for n in needles for form in _json_forms(n)]
    rows = dict(db.session.execute(select(table.c.id, target).where(or_(*wanted))).all())
    targeted: set[int] = set()
    if targets:
        found = dict(db.session.execute(select(table.c.id, target).where(or_(*targets))).all())
        targeted = set(found)
        rows.update(found)
    changed = 0
    for row_id, value in rows.items():
        redacted = _redact(value, targeted_needles or needles if row_id in targeted else needles)
        if redacted != value:
            db.session.execute(update(table).where(table.c.id == row_id).values({column: redacted}))
            changed += 1
    return changed
