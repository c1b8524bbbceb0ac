"""Access requests: everything stored about one person, by address, as a ZIP of JSON and .eml.

`collect_subject(email)` finds what is stored (contacts, in the trash too, signatures,
suppression entries, letters, answers, replies, tracking events, audit entries that name
them, the cases of the campaigns that wrote to them, the contacts that copy them in, the
webhook events that named them) as row ids; `write_export` streams it into a ZIP a chunk of
rows at a time: the messages and rows are never all in memory, only their ids (the heap grows
by a few hundred bytes a letter: 2.3 MB for 1,000 letters, 16.9 MB for 30,000, measured).
The web asks for it as a job (one `SubjectExport` row, its progress, a file that expires);
the command line writes it directly (decision 0089).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import secrets
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from sqlalchemy import ColumnElement, Select, Text, and_, cast, func, or_, select, update

from campaign.extensions import db
from campaign.labels import LABELS, label
from campaign.models import (
    AuditEvent,
    Campaign,
    Case,
    Contact,
    ContactImport,
    ContactList,
    Delivery,
    InboundMessage,
    InboundNote,
    ReplyAnswer,
    Signatory,
    Signature,
    SignOn,
    SignOnInvitation,
    SubjectExport,
    SubjectExportStatus,
    Suppression,
    TrackedLink,
    TrackingEvent,
    User,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    campaign_cases,
    list_memberships,
)
from campaign.models.calendar import letter_name
from campaign.services.accounts.audit import record_event
from campaign.services.contacts.contacts import FIELD_LABELS, InvalidValue, normalise_email
from campaign.services.contacts.suppressions import mask_email
from campaign.services.privacy import erased_addresses
from campaign.services.replies.answers import answer_message
from campaign.services.replies.intake import raw_message_of
from campaign.services.sending.ledger import raw_message

log = logging.getLogger(__name__)

JOB = "workers.jobs.export_subject"
# How long a finished export may be downloaded; its file is removed after (decision 0089).
KEEP_FOR = timedelta(hours=24)
# A queued or running export silent for this long is dead (no worker, a killed one).
STALE_AFTER = timedelta(minutes=10)
# Rows read (and, for letters, messages decompressed) per query: memory stays flat.
CHUNK = 200
# Progress is written at most this often (seconds) by the job.
BEAT_SECONDS = 1.0
JOB_SECONDS = 600
# The folder, inside the instance folder, that holds the exports (mode 0700).
FOLDER = ("private", "exports")
_ACTIVE = (SubjectExportStatus.QUEUED.value, SubjectExportStatus.RUNNING.value)

Progress = Callable[[int, int], None]


class _Superseded(Exception):
    """The export's row no longer names this run (removed, or its person erased)."""


class SubjectExportError(Exception):
    """The export cannot be made (a bad address, a file that exists); the message says why,
    in the reader's language."""


# --- what is stored -------------------------------------------------------------------------


@dataclass
class SubjectRecord:
    """What is stored about one address, as row ids (read again, in chunks, when written)."""

    email: str
    keys: tuple[str, ...]
    contact_ids: list[int] = field(default_factory=list)
    signature_ids: list[int] = field(default_factory=list)
    invitation_ids: list[int] = field(default_factory=list)
    suppression_ids: list[int] = field(default_factory=list)
    delivery_ids: list[int] = field(default_factory=list)
    answer_ids: list[int] = field(default_factory=list)
    reply_ids: list[int] = field(default_factory=list)
    tracking_ids: list[int] = field(default_factory=list)
    audit_ids: list[int] = field(default_factory=list)
    case_ids: list[int] = field(default_factory=list)
    # Contacts of other people whose copy list (cc_emails) holds the address, and the
    # letters to them: the person received those in copy.
    cc_contact_ids: list[int] = field(default_factory=list)
    in_copy_ids: set[int] = field(default_factory=set)
    # Webhook events that named them (their address or one of their contacts' ids).
    webhook_event_ids: list[int] = field(default_factory=list)
    # Import rejects files (CSV) that hold the address: (import id, file name, created).
    rejects_files: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        """True when nothing at all is stored about the address."""
        return not any(self.counts().values())

    def counts(self) -> dict[str, int]:
        return {
            "contacts": len(self.contact_ids),
            "signatures": len(self.signature_ids),
            "invitations": len(self.invitation_ids),
            "suppressions": len(self.suppression_ids),
            "letters": len(self.delivery_ids),
            "answers": len(self.answer_ids),
            "replies": len(self.reply_ids),
            "tracking_events": len(self.tracking_ids),
            "audit_entries": len(self.audit_ids),
            "cases": len(self.case_ids),
            "copied_in_by": len(self.cc_contact_ids),
            "disclosures": len(self.webhook_event_ids),
            "rejects_files": len(self.rejects_files),
        }

    @property
    def total(self) -> int:
        """Units of work of the export: letters and replies are read twice (their list,
        then their messages), everything else once."""
        counts = self.counts()
        counts.pop("rejects_files")
        return (
            sum(counts.values())
            + len(self.delivery_ids)
            + len(self.answer_ids)
            + len(self.reply_ids)
        )


def address_keys(email: str) -> tuple[str, ...]:
    """The keys the address is stored under: the contact form's normalisation (IDN domains
    in Unicode, lower-cased), and the address as typed, lower-cased (signatures' key)."""
    try:
        _stored, key = normalise_email(email)
    except InvalidValue as error:
        raise SubjectExportError(str(error)) from None
    plain = email.strip().lower()[:320]
    return tuple(dict.fromkeys((key, plain)))


def _ids(query: Select[Any]) -> list[int]:
    return sorted({int(row) for row in db.session.scalars(query)})


def _delivery_ids_query(keys: Sequence[str], contact_ids: Sequence[int]) -> Select[Any]:
    condition: ColumnElement[bool] = func.lower(Delivery.email).in_(keys)
    if contact_ids:
        condition = or_(condition, Delivery.contact_id.in_(contact_ids))
    return select(Delivery.id).where(condition)


def addresses_in(text: str) -> set[str]:
    """The whole addresses in `text`, lower-cased ("joann@x.org" is not "ann@x.org")."""
    return {found.lower() for found in _ADDRESS.findall(text)}


def _names_address(text: str, keys: Sequence[str]) -> bool:
    return not addresses_in(text).isdisjoint(keys)


def _like_any(column: Any, keys: Sequence[str]) -> ColumnElement[bool]:
    """A prefilter only (a substring match): rows are then checked for whole addresses."""
    text = func.lower(cast(column, Text))
    return or_(
        *(text.like(f"%{_like_escaped(form)}%", escape="\\") for form in _detail_forms(keys))
    )


def _with_merged(contact_ids: list[int]) -> list[int]:
    """`contact_ids` and every record merged into one of them, at any depth (the merged-away
    record keeps its old address, fields and letters, in the trash)."""
    found = set(contact_ids)
    frontier = list(found)
    while frontier:
        merged: set[int] = set()
        for chunk in _chunks(frontier):
            merged |= set(
                db.session.scalars(select(Contact.id).where(Contact.merged_into_id.in_(chunk)))
            )
        frontier = sorted(merged - found)
        found |= merged
    return sorted(found)


def collect_subject(email: str) -> SubjectRecord:
    """Find everything stored about `email` (SubjectExportError for a bad address)."""
    keys = address_keys(email)
    record = SubjectRecord(email=email.strip(), keys=keys)
    record.contact_ids = _with_merged(_ids(select(Contact.id).where(Contact.email_key.in_(keys))))
    # The addresses of records merged into theirs are theirs too (erasure's about.keys): her
    # reply from a merged-away address is hers, not "[another address]".
    merged_keys: set[str] = set()
    for chunk in _chunks(record.contact_ids):
        merged_keys |= set(
            db.session.scalars(select(Contact.email_key).where(Contact.id.in_(chunk)))
        )
    keys = (*keys, *sorted(merged_keys - set(keys)))
    record.keys = keys
    own = set(record.contact_ids)
    record.cc_contact_ids = [
        contact_id
        for contact_id, cc in db.session.execute(
            select(Contact.id, Contact.cc_emails)
            .where(_like_any(Contact.cc_emails, keys))
            .order_by(Contact.id)
        )
        if contact_id not in own and not {a.lower() for a in cc.split()}.isdisjoint(keys)
    ]
    record.signature_ids = _ids(select(Signature.id).where(Signature.email_key.in_(keys)))
    invitation: ColumnElement[bool] = func.lower(SignOnInvitation.email).in_(keys)
    if record.contact_ids:
        invitation = or_(invitation, SignOnInvitation.contact_id.in_(record.contact_ids))
    record.invitation_ids = _ids(select(SignOnInvitation.id).where(invitation))
    record.suppression_ids = _ids(select(Suppression.id).where(Suppression.email_key.in_(keys)))
    record.delivery_ids = _ids(_delivery_ids_query(keys, record.contact_ids))
    if record.cc_contact_ids:
        theirs = set(record.delivery_ids)
        copied = _ids(select(Delivery.id).where(Delivery.contact_id.in_(record.cc_contact_ids)))
        record.in_copy_ids = set(copied) - theirs
        record.delivery_ids = sorted(theirs | record.in_copy_ids)
    answered: ColumnElement[bool] = func.lower(ReplyAnswer.to_address).in_(keys)
    if record.contact_ids:
        answered = or_(answered, ReplyAnswer.contact_id.in_(record.contact_ids))
    record.answer_ids = _ids(select(ReplyAnswer.id).where(answered))
    deliveries = _delivery_ids_query(keys, record.contact_ids).scalar_subquery()
    replies = set(
        _ids(
            select(InboundMessage.id).where(
                or_(
                    InboundMessage.delivery_id.in_(deliveries),
                    func.lower(InboundMessage.from_address).in_(keys),
                )
            )
        )
    )
    # Bounces that name them, matched to no letter (or to another one).
    for message_id, recipients in db.session.execute(
        select(InboundMessage.id, InboundMessage.bounce_recipients).where(
            _like_any(InboundMessage.bounce_recipients, keys)
        )
    ):
        if not {str(a).strip().lower() for a in recipients or []}.isdisjoint(keys):
            replies.add(int(message_id))
    record.reply_ids = sorted(replies)
    record.tracking_ids = _ids(
        select(TrackingEvent.id).where(TrackingEvent.delivery_id.in_(deliveries))
    )
    record.case_ids = _ids(
        select(campaign_cases.c.case_id).where(
            campaign_cases.c.campaign_id.in_(
                select(Delivery.campaign_id)
                .where(Delivery.id.in_(_delivery_ids_query(keys, record.contact_ids)))
                .distinct()
                .scalar_subquery()
            )
        )
    )
    record.audit_ids = _audit_ids(record)
    record.webhook_event_ids = _webhook_event_ids(record)
    record.rejects_files = _rejects_files(keys)
    return record


def _webhook_event_ids(record: SubjectRecord) -> list[int]:
    """Webhook events whose payload names their address or one of their contacts' ids."""
    conditions: list[Any] = [_like_any(WebhookEvent.payload, record.keys)]
    if record.contact_ids:
        conditions.append(func.lower(cast(WebhookEvent.payload, Text)).like('%"contact_id"%'))
    contact_ids = set(record.contact_ids)
    found: list[int] = []
    for event_id, payload in db.session.execute(
        select(WebhookEvent.id, WebhookEvent.payload)
        .where(or_(*conditions))
        .order_by(WebhookEvent.id)
    ):
        text = json.dumps(payload or {}, ensure_ascii=False)
        if _names_address(text, record.keys) or _names_contact(payload, contact_ids):
            found.append(int(event_id))
    return found


def _rejects_files(keys: Sequence[str]) -> list[tuple[int, str, str]]:
    """Import rejects files (CSV, kept for a while) that hold the address."""
    found: list[tuple[int, str, str]] = []
    for import_id, path, created in db.session.execute(
        select(ContactImport.id, ContactImport.rejects_path, ContactImport.created_at)
        .where(ContactImport.rejects_path != "")
        .order_by(ContactImport.id)
    ):
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                holds = any(_names_address(line, keys) for line in handle)
        except OSError:
            continue
        if holds:
            found.append((int(import_id), Path(path).name, _plain(created)))
    return found


# Keys of an audit entry's detail that hold a contact's id.
_CONTACT_ID_KEYS = ("contact_id", "survivor_id", "merged_id")


def _audit_ids(record: SubjectRecord) -> list[int]:
    """Audit entries about their contacts, signatures, suppression entries or replies, or
    whose detail names their address or one of their contacts' ids."""
    detail_text = func.lower(cast(AuditEvent.detail, Text))
    conditions: list[Any] = []
    for target_type, ids in (
        ("contact", record.contact_ids),
        ("signature", record.signature_ids),
        ("suppression", record.suppression_ids),
        ("inbound_message", record.reply_ids),
    ):
        for start in range(0, len(ids), 500):
            chunk = [str(i) for i in ids[start : start + 500]]
            conditions.append(
                and_(AuditEvent.target_type == target_type, AuditEvent.target_id.in_(chunk))
            )
    for key in _detail_forms(record.keys):
        conditions.append(detail_text.like(f"%{_like_escaped(key)}%", escape="\\"))
    if record.contact_ids:
        conditions.extend(detail_text.like(f'%"{name}"%') for name in _CONTACT_ID_KEYS)
    found: list[int] = []
    contact_ids = set(record.contact_ids)
    rows = db.session.execute(
        select(AuditEvent.id, AuditEvent.target_type, AuditEvent.target_id, AuditEvent.detail)
        .where(or_(*conditions))
        .order_by(AuditEvent.id)
    )
    targets = (
        {("contact", str(i)) for i in record.contact_ids}
        | {("signature", str(i)) for i in record.signature_ids}
        | {("suppression", str(i)) for i in record.suppression_ids}
        | {("inbound_message", str(i)) for i in record.reply_ids}
    )
    for event_id, target_type, target_id, detail in rows:
        if (target_type, target_id) in targets:
            found.append(int(event_id))
            continue
        # LIKE was a prefilter: only a whole address counts ("joann@" is not "ann@").
        text = json.dumps(detail or {}, ensure_ascii=False)
        if _names_address(text, record.keys) or _names_contact(detail, contact_ids):
            found.append(int(event_id))
    return found


def _detail_forms(keys: Iterable[str]) -> list[str]:
    """The address as it may read inside stored JSON: as is, and with JSON's escapes."""
    forms: list[str] = []
    for key in keys:
        for form in (key, json.dumps(key)[1:-1].lower()):
            if form not in forms:
                forms.append(form)
    return forms


def _like_escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _names_contact(detail: Any, contact_ids: set[int]) -> bool:
    if not isinstance(detail, dict) or not contact_ids:
        return False
    return any(detail.get(name) in contact_ids for name in _CONTACT_ID_KEYS)


# --- the ZIP ----------------------------------------------------------------------------------


@dataclass
class ExportSummary:
    counts: dict[str, int]
    is_empty: bool
    size_bytes: int = 0


# Columns of a contact the contact form has no label for.
_EXTRA_LABELS: dict[str, LazyString] = {
    "id": _l("Record number"),
    "email_key": _l("Address key (the address in small letters)"),
    "search_key": _l("Search key (the names folded for searching)"),
    "created_at": _l("Created"),
    "updated_at": _l("Last changed"),
    "deleted_at": _l("Moved to the trash"),
    "deleted_by_id": _l("Moved to the trash by (account number)"),
    "merged_into_id": _l("Merged into (record number)"),
}
# Contact columns that hold an enumeration, and its label table (campaign.labels).
_CONTACT_LABEL_KINDS = {
    "kind": "contact_kind",
    "grammatical_gender": "gender",
    "role_type": "role_type",
    "style": "style",
    "risk_level": "risk_level",
}
# An address inside text: no brackets or quotes around it, and no full stop after it.
_ADDRESS = re.compile(
    r"[^\s@\"'<>,;:()\[\]{}]+@[^\s@\"'<>,;:()\[\]{}.]+(?:\.[^\s@\"'<>,;:()\[\]{}.]+)+"
)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _labelled(value: Any, kind: str) -> str:
    if kind == "audit_event" and str(value) not in LABELS[kind]:
        return str(value)
    return label(value, kind)


class _JsonWriter:
    """Writes one JSON document into a ZIP member as it goes: arrays item by item."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.first: list[bool] = []

    def raw(self, text: str) -> None:
        self.stream.write(text.encode("utf-8"))

    def open(self, bracket: str) -> None:
        self.raw(bracket + "\n")
        self.first.append(True)

    def close(self, bracket: str) -> None:
        self.first.pop()
        self.raw("\n" + bracket)

    def key(self, name: str) -> None:
        self._separator()
        self.raw(json.dumps(name) + ": ")

    def item(self, value: Any) -> None:
        self._separator()
        self.raw(json.dumps(value, ensure_ascii=False, indent=1, default=_plain))

    def value(self, value: Any) -> None:
        self.raw(json.dumps(value, ensure_ascii=False, indent=1, default=_plain))

    def _separator(self) -> None:
        if self.first and not self.first[-1]:
            self.raw(",\n")
        if self.first:
            self.first[-1] = False


class _Counter:
    def __init__(self, total: int, progress: Progress | None) -> None:
        self.done = 0
        self.total = total
        self.progress = progress

    def add(self, count: int = 1) -> None:
        self.done += count
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])


def _rows(model: Any, ids: Sequence[int], *columns: Any) -> Iterator[Any]:
    """Rows of `model` with these ids, in id order, CHUNK at a time (nothing else kept)."""
    for chunk in _chunks(ids):
        query = select(*columns) if columns else select(model)
        query = query.where(model.id.in_(chunk)).order_by(model.id)
        if columns:
            yield from db.session.execute(query).all()
        else:
            yield from db.session.scalars(query).all()
        db.session.expunge_all()


def write_export(
    record: SubjectRecord,
    target: IO[bytes],
    *,
    language: str = "en",
    progress: Progress | None = None,
    others_messages: bool = False,
) -> ExportSummary:
    """Write the ZIP of everything in `record` to `target` (a file open for writing).

    Received messages not sent by them (an assistant's reply, say) and answers to other
    addresses are listed, marked, but their .eml files are left out unless `others_messages`:
    they are other people's messages, to be reviewed before they are handed over.
    """
    counter = _Counter(record.total, progress)
    with force_locale(language), zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", readme_text(record))
        # The messages first: the lists below then name only files that are in the ZIP.
        written = _write_messages(archive, record, counter, others_messages=others_messages)
        with archive.open("person.json", "w") as stream:
            _write_person(_JsonWriter(stream), record, counter)
        with archive.open("deliveries.json", "w") as stream:
            _write_deliveries(_JsonWriter(stream), record, counter, written)
        with archive.open("replies.json", "w") as stream:
            _write_replies(_JsonWriter(stream), record, counter, written)
        with archive.open("tracking.json", "w") as stream:
            _write_tracking(_JsonWriter(stream), record, counter)
        with archive.open("signatures.json", "w") as stream:
            _write_signatures(_JsonWriter(stream), record, counter)
        with archive.open("audit.json", "w") as stream:
            _write_audit(_JsonWriter(stream), record, counter)
        with archive.open("disclosures.json", "w") as stream:
            _write_disclosures(_JsonWriter(stream), record, counter)
    if progress is not None:
        progress(record.total, record.total)
    return ExportSummary(record.counts(), record.is_empty)


def readme_text(record: SubjectRecord) -> str:
    """The README of the ZIP, in the current language."""
    counts = record.counts()
    lines = [
        _("Everything stored about %(address)s", address=record.email),
        _("Made on %(when)s (UTC).", when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M")),
        "",
    ]
    if record.is_empty:
        lines += [_("Nothing is stored about this address."), ""]
    lines += [
        _("The files in this archive:"),
        "",
        "person.json — "
        + _(
            "the contact records with this address (in the trash too), every field with "
            "its name and, for a choice, its meaning in words; the lists they are on; "
            "suppression entries (addresses we must not write to); the cases of the "
            "campaigns that wrote to them."
        ),
        "deliveries.json — "
        + _(
            "every letter addressed to them or sent to them in copy (%(letters)d) and every "
            "answer to a reply (%(answers)d): when, its status, and the file holding the "
            "exact message sent.",
            letters=counts["letters"],
            answers=counts["answers"],
        ),
        "letters/*.eml — "
        + _(
            "the exact messages as handed to the mail server, byte for byte; any e-mail "
            "program opens them."
        ),
        "replies.json — "
        + _(
            "messages received from them or about their letters (%(replies)d): replies, "
            "automatic answers and bounces, with their text and the notes kept on them; "
            "other people's addresses are replaced by “[another address]”.",
            replies=counts["replies"],
        ),
        "replies/*.eml — " + _("the received messages as they arrived, where they were kept."),
        "tracking.json — "
        + _(
            "opens and clicks recorded for their letters (%(events)d), with the network "
            "(never the full address) and the browser.",
            events=counts["tracking_events"],
        ),
        "signatures.json — "
        + _(
            "signatures on sign-on pages (%(signatures)d) and invitations to sign "
            "(%(invitations)d).",
            signatures=counts["signatures"],
            invitations=counts["invitations"],
        ),
        "audit.json — "
        + _(
            "entries of the audit log that name them (%(entries)d). Staff accounts and "
            "their network addresses are left out, and other people's addresses are "
            "replaced by “[another address]”.",
            entries=counts["audit_entries"],
        ),
        "disclosures.json — "
        + _(
            "events about them sent to other systems by webhook (%(events)d): what was "
            "sent, to which host, when.",
            events=counts["disclosures"],
        ),
        "",
        _(
            "The .eml files are exact copies: they can name other people (in copy, quoted "
            "text). Received messages that they did not send themselves are listed but their "
            ".eml files are left out. Review the files before sending them."
        ),
        "",
        _(
            "Dates and times are in UTC (ISO 8601). A field that reads “label” gives the "
            "meaning of the code beside it."
        ),
    ]
    if record.rejects_files:
        lines += [
            "",
            _(
                "Files of rejected import rows that hold this address (kept on the server, "
                "not in this archive; ask whoever runs the installation):"
            ),
        ]
        lines += [
            "  " + _("import %(id)d, %(file)s, %(when)s", id=number, file=name, when=when)
            for number, name, when in record.rejects_files
        ]
    return "\n".join(lines) + "\n"


def _field_label(name: str) -> str:
    found = FIELD_LABELS.get(name) or _EXTRA_LABELS.get(name)
    return str(found) if found is not None else name


def _write_person(out: _JsonWriter, record: SubjectRecord, counter: _Counter) -> None:
    out.open("{")
    out.key("address")
    out.value(record.email)
    out.key("exported_at")
    out.value(datetime.now(UTC).isoformat())
    out.key("counts")
    out.value(record.counts())
    out.key("contacts")
    out.open("[")
    columns = [column.name for column in Contact.__table__.columns]
    for contact in _rows(Contact, record.contact_ids):
        fields = []
        for name in columns:
            entry: dict[str, Any] = {
                "field": name,
                "label": _field_label(name),
                "value": _plain(getattr(contact, name)),
            }
            if name in _CONTACT_LABEL_KINDS:
                entry["value_label"] = label(getattr(contact, name), _CONTACT_LABEL_KINDS[name])
            fields.append(entry)
        lists = [
            {"id": list_id, "name": name}
            for list_id, name in db.session.execute(
                select(ContactList.id, ContactList.name)
                .join(list_memberships, list_memberships.c.list_id == ContactList.id)
                .where(list_memberships.c.contact_id == contact.id)
                .order_by(ContactList.name)
            )
        ]
        out.item(
            {
                "id": contact.id,
                "in_trash": contact.deleted_at is not None,
                "fields": fields,
                "lists": lists,
            }
        )
        counter.add()
    out.close("]")
    out.key("copied_in_by")
    out.open("[")
    for contact in _rows(Contact, record.cc_contact_ids):
        out.item(
            {
                "id": contact.id,
                "note": _(
                    "copied in on letters to %(name)s (record %(id)d)",
                    name=contact.display_name,
                    id=contact.id,
                ),
                "copy_addresses": [a for a in contact.cc_list if a.lower() in record.keys],
            }
        )
        counter.add()
    out.close("]")
    out.key("suppressions")
    out.open("[")
    for suppression in _rows(Suppression, record.suppression_ids):
        out.item(
            {
                "id": suppression.id,
                "email": suppression.email,
                "reason": suppression.reason,
                "reason_label": label(suppression.reason, "suppression_reason"),
                "note": suppression.note,
                "campaign_id": suppression.campaign_id,
                "created_at": _plain(suppression.created_at),
            }
        )
        counter.add()
    out.close("]")
    out.key("cases")
    out.open("[")
    for case in _rows(Case, record.case_ids):
        # A case is another person's: at high risk, named by its pseudonym only.
        out.item(
            {
                "id": case.id,
                "name": letter_name(case),
                "status": case.status,
                "status_label": label(case.status, "case_status"),
                "country": case.country,
            }
        )
        counter.add()
    out.close("]")
    out.close("}")


def _letter_file(delivery_id: int, campaign_id: int, step: int) -> str:
    return f"letters/{campaign_id}-{step}-{delivery_id}.eml"


def _answer_file(answer_id: int) -> str:
    return f"letters/answer-{answer_id}.eml"


def _reply_file(message_id: int) -> str:
    return f"replies/{message_id}.eml"


_DELIVERY_COLUMNS = (
    Delivery.id,
    Delivery.campaign_id,
    Campaign.name,
    Delivery.step,
    Delivery.email,
    Delivery.status,
    Delivery.reason,
    Delivery.attempts,
    Delivery.possible_duplicates,
    Delivery.last_code,
    Delivery.last_reply,
    Delivery.language,
    Delivery.message_id,
    Delivery.message_sha256,
    (Delivery.message_blob.is_not(None)).label("kept"),
    Delivery.created_at,
    Delivery.sent_at,
    Delivery.replied_at,
    Delivery.opened_at,
    Delivery.clicked_at,
)


def _not_kept_note(status: str, sha256: str, sent_at: Any, blob_kept: bool) -> str:
    """Why a letter's .eml is not in the ZIP, in words."""
    if blob_kept:
        return _("The stored copy is damaged and cannot be read; its SHA-256 is given.")
    if sha256 and sent_at is not None:
        return _("The copy was removed when its retention period ended; only its SHA-256 is kept.")
    if status in ("failed", "bounced", "suppressed", "cancelled"):
        return _("Never kept: no mail server accepted this message.")
    return _("No copy is kept: a message is stored once the mail server accepts it.")


def _write_deliveries(
    out: _JsonWriter, record: SubjectRecord, counter: _Counter, written: set[str]
) -> None:
    out.open("{")
    out.key("letters")
    out.open("[")
    for chunk in _chunks(record.delivery_ids):
        rows = db.session.execute(
            select(*_DELIVERY_COLUMNS)
            .join(Campaign, Campaign.id == Delivery.campaign_id)
            .where(Delivery.id.in_(chunk))
            .order_by(Delivery.id)
        ).all()
        for row in rows:
            item = {
                "id": row.id,
                "campaign_id": row.campaign_id,
                "campaign": row.name,
                "step": row.step,
                "email": row.email,
                "status": row.status,
                "status_label": label(row.status, "delivery_status"),
                "reason": row.reason,
                "reason_label": label(row.reason, "delivery_reason") if row.reason else "",
                "attempts": row.attempts,
                "possible_duplicates": row.possible_duplicates,
                "last_code": row.last_code,
                "last_reply": row.last_reply,
                "language": row.language,
                "message_id": row.message_id,
                "message_sha256": row.message_sha256,
                "created_at": _plain(row.created_at),
                "sent_at": _plain(row.sent_at),
                "replied_at": _plain(row.replied_at),
                "opened_at": _plain(row.opened_at),
                "clicked_at": _plain(row.clicked_at),
                "in_copy": row.id in record.in_copy_ids,
                "file": None,
            }
            if row.id in record.in_copy_ids:
                item["in_copy_label"] = _("in copy")
            name = _letter_file(row.id, row.campaign_id, row.step)
            if name in written:
                item["file"] = name
            else:
                item["file_note"] = _not_kept_note(
                    row.status, row.message_sha256 or "", row.sent_at, bool(row.kept)
                )
            out.item(item)
            counter.add()
    out.close("]")
    out.key("answers")
    out.open("[")
    for answer in _rows(
        ReplyAnswer,
        record.answer_ids,
        ReplyAnswer.id,
        ReplyAnswer.inbound_id,
        ReplyAnswer.delivery_id,
        ReplyAnswer.to_address,
        ReplyAnswer.subject,
        ReplyAnswer.body_text,
        ReplyAnswer.message_id,
        ReplyAnswer.status,
        ReplyAnswer.message_sha256,
        (ReplyAnswer.message_blob.is_not(None)).label("kept"),
        ReplyAnswer.created_at,
        ReplyAnswer.sent_at,
    ):
        to_them = (answer.to_address or "").strip().lower() in record.keys
        item = {
            "id": answer.id,
            "reply_id": answer.inbound_id,
            "delivery_id": answer.delivery_id,
            "to": _redacted(answer.to_address, record.keys),
            "to_them": to_them,
            "subject": _redacted(answer.subject, record.keys),
            "text": _redacted(answer.body_text, record.keys),
            "message_id": answer.message_id,
            "status": answer.status,
            "status_label": label(answer.status, "answer_status"),
            "message_sha256": answer.message_sha256,
            "created_at": _plain(answer.created_at),
            "sent_at": _plain(answer.sent_at),
            "file": _answer_file(answer.id) if _answer_file(answer.id) in written else None,
        }
        if not to_them:
            item["to_note"] = _("sent to another address, not to them")
        out.item(item)
        counter.add()
    out.close("]")
    out.close("}")


def _write_replies(
    out: _JsonWriter, record: SubjectRecord, counter: _Counter, written: set[str]
) -> None:
    keys = record.keys
    out.open("[")
    for chunk in _chunks(record.reply_ids):
        messages = db.session.scalars(
            select(InboundMessage).where(InboundMessage.id.in_(chunk)).order_by(InboundMessage.id)
        ).all()
        notes: dict[int, list[dict[str, Any]]] = {}
        for note in db.session.scalars(
            select(InboundNote)
            .where(InboundNote.inbound_id.in_(chunk))
            .order_by(InboundNote.created_at, InboundNote.id)
        ):
            # The note, not its author: staff are not named in an export.
            notes.setdefault(note.inbound_id, []).append(
                {"text": _redacted(note.text, keys), "created_at": _plain(note.created_at)}
            )
        for message in messages:
            from_them = (message.from_address or "").strip().lower() in keys
            item = {
                "id": message.id,
                "kind": message.kind,
                "kind_label": label(message.kind, "inbound_kind"),
                "bounce_kind": message.bounce_kind,
                "from": _redacted(message.from_address, keys),
                "from_them": from_them,
                "subject": _redacted(message.subject, keys),
                "received_at": _plain(message.received_at),
                "message_id": message.message_id,
                "in_reply_to": message.in_reply_to,
                "delivery_id": message.delivery_id,
                "match_method": message.match_method,
                "match_method_label": label(message.match_method, "match_method"),
                "is_weak_match": message.is_weak_match,
                "dmarc": message.dmarc,
                "text": _redacted(message.text, keys),
                "html": _redacted(message.html, keys),
                "attachments": _redacted(message.attachments, keys),
                "problems": message.problems,
                "handled_at": _plain(message.handled_at),
                "notes": notes.get(message.id, []),
                "file": _reply_file(message.id) if _reply_file(message.id) in written else None,
            }
            if not from_them:
                item["from_note"] = _(
                    "not sent by them (another sender, or a mail server): its .eml file is "
                    "left out, as it is someone else's message"
                )
            out.item(item)
            counter.add()
        db.session.expunge_all()
    out.close("]")


def _write_tracking(out: _JsonWriter, record: SubjectRecord, counter: _Counter) -> None:
    out.open("[")
    for chunk in _chunks(record.tracking_ids):
        rows = db.session.execute(
            select(
                TrackingEvent.id,
                TrackingEvent.delivery_id,
                TrackingEvent.campaign_id,
                TrackingEvent.kind,
                TrackingEvent.occurred_at,
                TrackingEvent.ip_prefix,
                TrackingEvent.user_agent,
                TrackedLink.url,
            )
            .outerjoin(TrackedLink, TrackedLink.id == TrackingEvent.link_id)
            .where(TrackingEvent.id.in_(chunk))
            .order_by(TrackingEvent.id)
        ).all()
        for row in rows:
            out.item(
                {
                    "id": row.id,
                    "delivery_id": row.delivery_id,
                    "campaign_id": row.campaign_id,
                    "kind": row.kind,
                    "kind_label": label(row.kind, "tracking_kind"),
                    "occurred_at": _plain(row.occurred_at),
                    "network": row.ip_prefix,
                    "browser": row.user_agent,
                    "link": row.url,
                }
            )
            counter.add()
    out.close("]")


# Signature columns left out: hashes of the e-mailed links' secrets, and the staff account
# that moderated it.
_SIGNATURE_SKIPPED = frozenset({"confirm_hash", "change_hash", "moderated_by_id"})


def _write_signatures(out: _JsonWriter, record: SubjectRecord, counter: _Counter) -> None:
    out.open("{")
    out.key("signatures")
    out.open("[")
    columns = [c.name for c in Signature.__table__.columns if c.name not in _SIGNATURE_SKIPPED]
    for signature in _rows(Signature, record.signature_ids):
        item = {name: _plain(getattr(signature, name)) for name in columns}
        item["status_label"] = label(signature.status, "signature_status")
        item["kind_label"] = label(signature.kind, "signatory_kind")
        item["publish_as_label"] = label(signature.publish_as, "publish_as")
        sign_on = db.session.get(SignOn, signature.sign_on_id)
        item["statement_id"] = sign_on.statement_id if sign_on is not None else None
        signatory = (
            db.session.get(Signatory, signature.signatory_id) if signature.signatory_id else None
        )
        if signatory is not None:
            # The row of the statement's signatories made from this signature (as published).
            item["signatory"] = {
                column.name: _plain(getattr(signatory, column.name))
                for column in Signatory.__table__.columns
            }
        out.item(item)
        counter.add()
    out.close("]")
    out.key("invitations")
    out.open("[")
    for invitation in _rows(SignOnInvitation, record.invitation_ids):
        out.item(
            {
                "id": invitation.id,
                "sign_on_id": invitation.sign_on_id,
                "contact_id": invitation.contact_id,
                "email": invitation.email,
                "invited_at": _plain(invitation.invited_at),
                "reminded_at": _plain(invitation.reminded_at),
                "created_at": _plain(invitation.created_at),
            }
        )
        counter.add()
    out.close("]")
    out.close("}")


def _redacted(value: Any, keys: Sequence[str]) -> Any:
    """`value` with every address other than the subject's replaced (staff, other people)."""
    if isinstance(value, dict):
        return {k: _redacted(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, keys) for v in value]
    if isinstance(value, str):
        other = _("[another address]")
        return _ADDRESS.sub(lambda m: m.group(0) if m.group(0).lower() in keys else other, value)
    return value


def _write_audit(out: _JsonWriter, record: SubjectRecord, counter: _Counter) -> None:
    out.open("[")
    for row in _rows(
        AuditEvent,
        record.audit_ids,
        AuditEvent.id,
        AuditEvent.at,
        AuditEvent.action,
        AuditEvent.target_type,
        AuditEvent.target_id,
        AuditEvent.detail,
    ):
        # Who did it and from where are staff's data, not the subject's: left out.
        out.item(
            {
                "id": row.id,
                "at": _plain(row.at),
                "action": row.action,
                "action_label": _labelled(row.action, "audit_event"),
                "about": row.target_type,
                "about_id": row.target_id,
                "detail": _redacted(row.detail or {}, record.keys),
            }
        )
        counter.add()
    out.close("]")


def _write_messages(
    archive: zipfile.ZipFile,
    record: SubjectRecord,
    counter: _Counter,
    *,
    others_messages: bool = False,
) -> set[str]:
    """The exact bytes of every letter, answer and received message, a chunk at a time;
    returns the names written."""
    written: set[str] = set()
    for chunk in _chunks(record.delivery_ids):
        for delivery in db.session.scalars(
            select(Delivery).where(Delivery.id.in_(chunk)).order_by(Delivery.id)
        ).all():
            data = raw_message(delivery)
            if data is not None:
                name = _letter_file(delivery.id, delivery.campaign_id, delivery.step)
                archive.writestr(name, data)
                written.add(name)
            counter.add()
        db.session.expunge_all()
    for answer in _rows(ReplyAnswer, record.answer_ids):
        theirs = (answer.to_address or "").strip().lower() in record.keys
        data = answer_message(answer) if theirs or others_messages else None
        if data is not None:
            archive.writestr(_answer_file(answer.id), data)
            written.add(_answer_file(answer.id))
        counter.add()
    for message in _rows(InboundMessage, record.reply_ids):
        theirs = (message.from_address or "").strip().lower() in record.keys
        data = raw_message_of(message) if theirs or others_messages else None
        if data is not None:
            archive.writestr(_reply_file(message.id), data)
            written.add(_reply_file(message.id))
        counter.add()
    return written


def _write_disclosures(out: _JsonWriter, record: SubjectRecord, counter: _Counter) -> None:
    """Webhook events that named them: what was sent, to which host, when (recipients)."""
    out.open("[")
    for event in _rows(WebhookEvent, record.webhook_event_ids):
        sent = [
            {
                "host": urlsplit(url).hostname or "",
                "status": status,
                "attempts": attempts,
                "last_attempt_at": _plain(last_attempt_at),
                "delivered_at": _plain(delivered_at),
            }
            for url, status, attempts, last_attempt_at, delivered_at in db.session.execute(
                select(
                    WebhookEndpoint.url,
                    WebhookDelivery.status,
                    WebhookDelivery.attempts,
                    WebhookDelivery.last_attempt_at,
                    WebhookDelivery.delivered_at,
                )
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.event_id == event.id)
                .order_by(WebhookDelivery.id)
            )
        ]
        out.item(
            {
                "id": event.id,
                "type": event.type,
                "created_at": _plain(event.created_at),
                "payload": _redacted(event.payload or {}, record.keys),
                "sent_to": sent,
            }
        )
        counter.add()
    out.close("]")


# --- the command line: a file written directly ------------------------------------------------


def export_to_file(
    email: str,
    path: Path,
    *,
    language: str = "en",
    progress: Progress | None = None,
    others_messages: bool = False,
) -> ExportSummary:
    """Write the export of `email` to `path`, which must not exist; audited (flush).

    The ZIP is written beside `path` (mode 0600) and linked into place only when complete:
    a failure leaves no file, and a file made meanwhile at `path` is never overwritten.
    """
    if path.exists() or path.is_symlink():
        raise SubjectExportError(
            _("%(file)s already exists; choose another name (it is never overwritten)", file=path)
        )
    record = collect_subject(email)
    folder = path.parent if str(path.parent) else Path(".")
    draft = folder / f".{path.name}.{uuid.uuid4().hex}.part"
    try:
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise SubjectExportError(
            _("%(file)s cannot be written: %(reason)s", file=path, reason=error.strerror)
        ) from None
    try:
        with os.fdopen(fd, "wb") as stream:
            summary = write_export(
                record,
                stream,
                language=language,
                progress=progress,
                others_messages=others_messages,
            )
            stream.flush()
            os.fsync(stream.fileno())
        try:
            _link_new(draft, path)
        except FileExistsError:
            raise SubjectExportError(
                _(
                    "%(file)s already exists; choose another name (it is never overwritten)",
                    file=path,
                )
            ) from None
        summary.size_bytes = path.stat().st_size
    except OSError as error:
        raise SubjectExportError(
            _("%(file)s cannot be written: %(reason)s", file=path, reason=error.strerror)
        ) from None
    finally:
        draft.unlink(missing_ok=True)
    _audit_export(record, via="cli")
    return summary


def _link_new(draft: Path, path: Path) -> None:
    """Put `draft` at `path`, never over an existing file: a hard link, or, where the file
    system has none (FAT, exFAT: EPERM), an exclusive create and a copy."""
    try:
        os.link(draft, path)
        return
    except PermissionError as error:
        if error.errno != errno.EPERM:
            raise
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as target, draft.open("rb") as source:
            shutil.copyfileobj(source, target, 1 << 20)
            target.flush()
            os.fsync(target.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _audit_export(
    record: SubjectRecord,
    *,
    via: str,
    actor: User | None = None,
    export_id: int | None = None,
    contact_id: int | None = None,
) -> None:
    """One audit entry: who asked, for which contact; the address only masked."""
    target = contact_id or (record.contact_ids[0] if record.contact_ids else None)
    detail: dict[str, Any] = {
        "via": via,
        "address": mask_email(record.email),
        "contact_ids": record.contact_ids,
        "is_empty": record.is_empty,
    }
    if export_id is not None:
        detail["export_id"] = export_id
    record_event(
        "subject.export",
        target_type="contact" if target else "subject_export",
        target_id=target if target else (export_id or ""),
        actor=actor,
        detail=detail,
    )


# --- the web: a job, its progress, a file that expires ------------------------------------------


def exports_folder() -> Path:
    folder = Path(current_app.instance_path).joinpath(*FOLDER)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _now() -> datetime:
    return datetime.now(UTC)


def email_hash(email: str) -> str:
    """The keyed hash kept on an export's row (the erased list's hashing, decision 0090)."""
    key = erased_addresses.erasure_key(create=True)
    assert key is not None
    return erased_addresses.hashed_key(erased_addresses.address_key(email), key)


def exports_for_key(key: str) -> list[SubjectExport]:
    """The exports (finished ones too) of the address whose key (Contact.email_key form) is
    `key`: what erasing that person must remove (decision 0089)."""
    secret = erased_addresses.erasure_key()
    if secret is None:
        return []  # no export was ever asked for: each one makes the key
    hashed = erased_addresses.hashed_key(key, secret)
    return list(
        db.session.scalars(
            select(SubjectExport)
            .where(SubjectExport.email_hash == hashed)
            .order_by(SubjectExport.id)
        )
    )


def start_export(
    email: str, *, actor: User, language: str, contact_id: int | None = None
) -> SubjectExport:
    """Queue the export of `email` as a job (when the caller commits); audited; flush."""
    address_keys(email)  # a bad address is refused here, before any row
    export = SubjectExport(
        token=secrets.token_urlsafe(32),
        run_key=uuid.uuid4().hex,
        status=SubjectExportStatus.QUEUED.value,
        contact_id=contact_id,
        email=email.strip(),
        email_hash=email_hash(email),
        language=language,
        requested_by_id=actor.id,
        queued_at=_now(),
    )
    db.session.add(export)
    db.session.flush()
    detail: dict[str, Any] = {"via": "web", "address": mask_email(email), "export_id": export.id}
    record_event(
        "subject.export",
        target_type="contact" if contact_id else "subject_export",
        target_id=contact_id or export.id,
        actor=actor,
        detail=detail,
    )
    from campaign.queue import enqueue_after_commit

    enqueue_after_commit(
        db.session(),
        JOB,
        export.id,
        export.run_key,
        job_id=job_id(export),
        job_timeout=JOB_SECONDS,
    )
    return export


def claim(export_id: int, run_key: str) -> bool:
    """Take queued export `export_id` for this run (flush); False if not queued or not ours."""
    table = SubjectExport.__table__
    moved = db.session.execute(
        update(table)
        .where(
            table.c.id == export_id,
            table.c.run_key == run_key,
            table.c.status == SubjectExportStatus.QUEUED.value,
        )
        .values(status=SubjectExportStatus.RUNNING.value, heartbeat_at=_now())
    )
    return int(getattr(moved, "rowcount", 0) or 0) == 1


def run_job(export_id: int, run_key: str, *, commit: Callable[[], None]) -> None:
    """Make claimed export `export_id`: its ZIP in the private folder, its progress on the row."""
    export = db.session.get(SubjectExport, export_id)
    if export is None or export.run_key != run_key:
        return
    record = collect_subject(export.email)
    export.total = record.total
    export.done = 0
    export.heartbeat_at = _now()
    language = export.language
    commit()
    folder = exports_folder()
    name = f"{export_id}-{secrets.token_hex(8)}.zip"
    draft = folder / f".{name}.part"
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = _now()
        if now.timestamp() - last[0] < BEAT_SECONDS and done < total:
            return
        last[0] = now.timestamp()
        table = SubjectExport.__table__
        # Through its own connection: the reading session keeps its chunk in hand.
        with db.engine.begin() as connection:
            moved = connection.execute(
                update(table)
                .where(table.c.id == export_id, table.c.run_key == run_key)
                .values(done=done, total=total, heartbeat_at=now)
            )
        if int(getattr(moved, "rowcount", 0) or 0) != 1:
            raise _Superseded  # removed, or the person erased meanwhile: stop, keep nothing

    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as stream:
            summary = write_export(record, stream, language=language, progress=progress)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(draft, folder / name)
    except _Superseded:
        draft.unlink(missing_ok=True)
        log.info("subject export %s was withdrawn while it ran; nothing kept", export_id)
        return
    except BaseException:
        draft.unlink(missing_ok=True)
        raise
    now = _now()
    table = SubjectExport.__table__
    # One conditional write: an erasure or a removal that took the row meanwhile wins.
    moved = db.session.execute(
        update(table)
        .where(table.c.id == export_id, table.c.run_key == run_key)
        .values(
            status=SubjectExportStatus.DONE.value,
            file_name=name,
            size_bytes=(folder / name).stat().st_size,
            is_empty=summary.is_empty,
            done=record.total,
            total=record.total,
            finished_at=now,
            expires_at=now + KEEP_FOR,
            email="",  # no longer needed: the table is not a list of who asked
        )
    )
    if int(getattr(moved, "rowcount", 0) or 0) != 1:
        db.session.rollback()
        (folder / name).unlink(missing_ok=True)
        log.info("subject export %s was withdrawn as it finished; nothing kept", export_id)
        return
    commit()


def mark_failed(export_id: int, run_key: str, error: BaseException) -> None:
    """Record that run `run_key` of export `export_id` failed; flush."""
    table = SubjectExport.__table__
    text = json.dumps(_error_record(error), ensure_ascii=False)
    db.session.execute(
        update(table)
        .where(table.c.id == export_id, table.c.run_key == run_key)
        .values(
            status=SubjectExportStatus.FAILED.value,
            error=text[:2000],
            email="",
            finished_at=_now(),
        )
    )


def _error_record(error: BaseException) -> dict[str, Any]:
    """What went wrong as a code and its parameters, worded when shown (failure_text)."""
    if type(error).__name__ == "JobTimeoutException":
        return {"code": "timeout", "seconds": JOB_SECONDS}
    if isinstance(error, OSError):
        return {
            "code": "os",
            "path": str(error.filename or ""),
            "reason": error.strerror or type(error).__name__,
            "errno": error.errno,
        }
    if isinstance(error, SubjectExportError):
        return {"code": "export", "text": str(error)}
    return {"code": "other", "type": type(error).__name__}


def not_queued(export_id: int) -> None:
    """The queue did not take the job (Redis away): the row says so; flush."""
    table = SubjectExport.__table__
    db.session.execute(
        update(table)
        .where(table.c.id == export_id)
        .values(status=SubjectExportStatus.FAILED.value, error=NOT_QUEUED, email="")
    )


NOT_QUEUED = "not-queued"


def find_export(token: str) -> SubjectExport | None:
    if not token or len(token) > 64:
        return None
    return db.session.scalar(select(SubjectExport).where(SubjectExport.token == token))


def job_id(export: SubjectExport) -> str:
    return f"subject-export-{export.id}-{export.run_key}"


def _still_queued(export: SubjectExport) -> bool:
    """Whether RQ still holds the export's job waiting its turn (a busy queue, not a dead
    one); True too when Redis cannot say, so that a passing outage fails nothing."""
    from redis.exceptions import RedisError
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus
    from rq.serializers import JSONSerializer

    from campaign.queue import get_redis

    try:
        job = Job.fetch(job_id(export), get_redis(), serializer=JSONSerializer)
        return job.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.SCHEDULED)
    except NoSuchJobError:
        return False
    except (RedisError, OSError):
        return True


def is_stale(export: SubjectExport, now: datetime | None = None) -> bool:
    """A queued or running export nothing will finish: silent past STALE_AFTER, and not a
    queued job still waiting behind others."""
    if export.status not in _ACTIVE:
        return False
    moment = now or _now()
    if (export.heartbeat_at or export.queued_at) >= moment - STALE_AFTER:
        return False
    return not (export.status == SubjectExportStatus.QUEUED.value and _still_queued(export))


def is_downloadable(export: SubjectExport, now: datetime | None = None) -> bool:
    moment = now or _now()
    return (
        export.status == SubjectExportStatus.DONE.value
        and bool(export.file_name)
        and export.expires_at is not None
        and export.expires_at > moment
    )


def failure_text(export: SubjectExport) -> str:
    """Why an export stopped, in the reader's language."""
    if export.error == NOT_QUEUED:
        return _(
            "the export could not be queued: the job queue (Redis) does not answer. Try "
            "again in a moment; if it goes on, tell whoever runs this installation"
        )
    if is_stale(export) or not export.error:
        return _(
            "the export stopped answering before the end (no worker took it, or its worker "
            "was stopped)"
        )
    try:
        found = json.loads(export.error)
    except ValueError:
        found = {"code": "export", "text": export.error}
    if not isinstance(found, dict):
        found = {"code": "export", "text": export.error}
    code = found.get("code")
    if code == "timeout":
        return _(
            "the export took longer than its %(seconds)s seconds and was stopped; try again "
            "when the worker is less busy",
            seconds=found.get("seconds", JOB_SECONDS),
        )
    if code == "os":
        return _(
            "the export's file %(file)s could not be written: %(reason)s",
            file=found.get("path") or exports_folder(),
            reason=found.get("reason", ""),
        )
    return _(
        "the export stopped with an error (%(error)s); the worker's log has the details",
        error=found.get("text") or found.get("type") or "",
    )


def percent(export: SubjectExport) -> int:
    if export.status == SubjectExportStatus.DONE.value:
        return 100
    return min(100, export.done * 100 // export.total) if export.total else 0


def export_path(export: SubjectExport) -> Path | None:
    if not export.file_name or "/" in export.file_name or export.file_name.startswith("."):
        return None
    return exports_folder() / export.file_name


def open_download(export: SubjectExport, *, actor: User) -> IO[bytes] | None:
    """The export's file opened for reading (None once expired or gone); audited; flush."""
    if not is_downloadable(export):
        return None
    path = export_path(export)
    if path is None:
        return None
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        return None
    export.downloaded_at = _now()
    record_event(
        "subject.export_download",
        target_type="contact" if export.contact_id else "subject_export",
        target_id=export.contact_id or export.id,
        actor=actor,
        detail={"export_id": export.id},
    )
    db.session.flush()
    return stream


def remove_export(export: SubjectExport, *, actor: User | None = None) -> None:
    """Delete the export's file now (a job still running is stopped); the row stays
    (expired) as its record; flush."""
    was_active = export.status in _ACTIVE
    path = export_path(export)
    if path is not None:
        path.unlink(missing_ok=True)
    had_file = bool(export.file_name)
    export.file_name = ""
    export.email = ""
    export.run_key = ""  # a job still running stops and keeps nothing
    if export.status != SubjectExportStatus.FAILED.value:
        export.status = SubjectExportStatus.EXPIRED.value
    if actor is not None and (had_file or was_active):
        record_event(
            "subject.export_remove",
            target_type="contact" if export.contact_id else "subject_export",
            target_id=export.contact_id or export.id,
            actor=actor,
            detail={"export_id": export.id},
        )
    db.session.flush()


def remove_expired(now: datetime | None = None) -> int:
    """Remove every export file whose time has passed (and leftovers of dead jobs); flush."""
    moment = now or _now()
    expired = db.session.scalars(
        select(SubjectExport).where(
            SubjectExport.file_name != "",
            SubjectExport.expires_at.is_not(None),
            SubjectExport.expires_at <= moment,
        )
    ).all()
    for export in expired:
        remove_export(export)
    stale = db.session.scalars(
        select(SubjectExport).where(
            SubjectExport.status.in_(_ACTIVE),
            func.coalesce(SubjectExport.heartbeat_at, SubjectExport.queued_at)
            < moment - STALE_AFTER,
        )
    ).all()
    for export in stale:
        if not is_stale(export, moment):
            continue  # still waiting in the queue
        export.status = SubjectExportStatus.FAILED.value
        export.email = ""
    folder = Path(current_app.instance_path).joinpath(*FOLDER)
    if folder.is_dir():
        # A ".part" left by a killed job: nothing will finish it.
        for leftover in folder.glob(".*.part"):
            if leftover.stat().st_mtime < (moment - STALE_AFTER).timestamp():
                leftover.unlink(missing_ok=True)
    db.session.flush()
    return len(expired)


def recent_exports(contact_id: int | None = None, limit: int = 20) -> list[SubjectExport]:
    query = select(SubjectExport).order_by(SubjectExport.id.desc()).limit(limit)
    if contact_id is not None:
        query = query.where(SubjectExport.contact_id == contact_id)
    return list(db.session.scalars(query))
