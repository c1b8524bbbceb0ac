"""Signing a statement on its public page: the form checked, abuse limited, the e-mailed link.

A stranger's form becomes an unconfirmed `Signature`; the e-mail sent after the commit
(the notice "signature_confirmation") carries a link whose SHA-256 alone is stored. Following
it (a POST: mail scanners fetch every GET) confirms the signature for the editors. Nothing a
signer types is ever rendered as a template; one-line fields lose line breaks (decision 0028).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale, format_number, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from campaign.extensions import db
from campaign.i18n import normalise_tag
from campaign.letters.letter import LetterSource, contact_context, match_language
from campaign.letters.markdown import render_body
from campaign.letters.salutations import primary_language
from campaign.letters.sandbox import RenderError, render
from campaign.letters.signatories import signatory_line
from campaign.models import (
    PublishAs,
    SignatoryKind,
    Signature,
    SignatureStatus,
    SignOn,
    Statement,
    WebhookEventType,
)
from campaign.queue import get_redis
from campaign.rate_limit import count_in_window
from campaign.services.accounts.audit import record_event
from campaign.services.backups.hold import sending_is_held
from campaign.services.contacts.contacts import normalise_email
from campaign.services.privacy import erased_addresses
from campaign.services.sending.notices import Notice, build_message, queue_notice
from campaign.services.sending.unsubscribe import public_url
from campaign.services.sign_on.pages import (
    accepting,
    as_signatory_values,
    closed_reason,
    email_key,
    name_key,
)
from campaign.services.statements.statements import letter_source
from campaign.services.webhooks import payloads as webhook_payloads
from campaign.services.webhooks.events import record_webhook_event
from campaign.tracking.buffer import ip_prefix

log = logging.getLogger(__name__)

LINK_LIFETIME = timedelta(hours=48)
CONFIRM_PATH = "/sign/confirm/"  # campaign.web.sign_on.public serves it
SIGN_PATH = "/sign/"
# Languages the e-mails are written in; any other signer reads English.
EMAIL_LANGUAGES = ("en", "fr", "ru")

# Submissions per hour that reach the database. A person signs once or twice; a partner's
# office behind one address may sign for a dozen colleagues; a page shared widely gets
# hundreds an hour at most. Beyond these the form answers 429 with the wait in words.
PER_EMAIL_PER_HOUR = 5
PER_NETWORK_PER_HOUR = 30  # one IPv4 /24 or IPv6 /48: a household, an office, a VPN exit
PER_SIGN_ON_PER_HOUR = 500
RATE_WINDOW_SECONDS = 3600

# The longest value each field keeps (the column's size): a longer one is refused, not cut.
FIELD_LIMITS = {
    "name": 300,
    "acronym": 50,
    "role": 200,
    "organisation": 300,
    "country": 100,
    "exile_country": 100,
    "email": 320,
}
FIELD_LABELS = {
    "kind": _l("Signing as"),
    "name": _l("Name"),
    "acronym": _l("Acronym"),
    "role": _l("Role"),
    "organisation": _l("Organisation"),
    "country": _l("Country"),
    "exile_country": _l("Based in exile in"),
    "publish_as": _l("Publish my signature"),
    "email": _l("E-mail"),
    "consent": _l("Consent"),
}
# Which fields each kind of signer fills in; the others are ignored (a form switched halfway).
KIND_FIELDS = {
    SignatoryKind.ORGANISATION.value: ("name", "acronym", "country", "exile_country"),
    SignatoryKind.INDIVIDUAL.value: ("name", "role", "organisation", "country"),
}
HONEYPOT_FIELD = "website"
# Control characters that survive whitespace collapsing, and the bidirectional overrides
# and isolates that make a name display as something else than it is.
_REFUSED_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class SubmitOutcome(enum.StrEnum):
    NEW = "new"  # a new unconfirmed signature, its link e-mailed
    RESENT = "resent"  # the same signer again before confirming: a fresh link
    # The same signer again before confirming, with other values: held until the signer
    # confirms the change from its own e-mail; the first choice stands meanwhile.
    CHANGE_PENDING = "change_pending"
    ALREADY_SIGNED = "already_signed"  # confirmed before: told so by e-mail, nothing stored
    DOUBLE = "double"  # a simultaneous copy of a submission being recorded
    IGNORED = "ignored"  # the honeypot was filled: answered as accepted, nothing stored


@dataclass(frozen=True)
class SubmitResult:
    outcome: SubmitOutcome
    signature_id: int | None = None


class SignatureInputError(ValueError):
    """The form cannot be accepted; `errors` maps each wrong field to its message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(self.errors.values()))


class SignOnClosed(ValueError):
    """The page takes no signatures now (closed, or past its deadline)."""


class SigningTooOften(RuntimeError):
    """A rate limit is reached; `retry_after` is in seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfirmationError(ValueError):
    """A confirmation link that cannot confirm: unknown, or expired."""


# --- the form ------------------------------------------------------------------------------


@dataclass
class _Cleaned:
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def clean_line(value: str) -> str:
    """One line of text: Unicode-composed, every run of whitespace (CR/LF too) one space."""
    return " ".join(unicodedata.normalize("NFC", value).split())


def _clean_field(cleaned: _Cleaned, form: Mapping[str, str], name: str) -> None:
    label = str(FIELD_LABELS[name])
    raw = str(form.get(name, "") or "")
    value = clean_line(raw)
    limit = FIELD_LIMITS[name]
    if len(value) > limit:
        cleaned.errors[name] = _(
            "%(label)s: at most %(limit)s characters (this one has %(length)s)",
            label=label,
            limit=format_number(limit),
            length=format_number(len(value)),
        )
    elif _REFUSED_CHARACTERS.search(value):
        cleaned.errors[name] = _(
            "%(label)s: contains an invisible control character; type it again", label=label
        )
    cleaned.values[name] = value


def _checked(form: Mapping[str, str], name: str) -> bool:
    return str(form.get(name, "")).strip().lower() in {"1", "on", "yes", "true"}


def clean_form(form: Mapping[str, str]) -> dict[str, str]:
    """Check every field of a signature form; SignatureInputError lists all that are wrong."""
    cleaned = _Cleaned()
    kind = str(form.get("kind", "")).strip()
    if kind not in KIND_FIELDS:
        cleaned.errors["kind"] = _("Signing as: choose an organisation or an individual")
        kind = SignatoryKind.ORGANISATION.value
    cleaned.values["kind"] = kind
    for name in KIND_FIELDS[kind]:
        _clean_field(cleaned, form, name)
    for name in FIELD_LIMITS:
        cleaned.values.setdefault(name, "")
    if "name" not in cleaned.errors and not cleaned.values["name"]:
        cleaned.errors["name"] = (
            _("Name: give your organisation's name")
            if kind == SignatoryKind.ORGANISATION.value
            else _("Name: give your name")
        )

    publish_as = str(form.get("publish_as", "")).strip()
    if publish_as not in {p.value for p in PublishAs}:
        cleaned.errors["publish_as"] = _("Publish my signature: choose how your name is shown")
    elif (
        publish_as == PublishAs.ORGANISATION_ONLY.value
        and kind == SignatoryKind.INDIVIDUAL.value
        and not cleaned.values["organisation"]
        and "organisation" not in cleaned.errors
    ):
        cleaned.errors["organisation"] = _(
            "Organisation: needed to publish your signature under your organisation only"
        )
    cleaned.values["publish_as"] = publish_as

    _clean_field(cleaned, form, "email")
    if "email" not in cleaned.errors:
        try:
            address, _key = normalise_email(cleaned.values["email"])
        except ValueError as error:
            cleaned.errors["email"] = _("E-mail: %(problem)s", problem=str(error))
        else:
            cleaned.values["email"] = address
    if not _checked(form, "consent"):
        cleaned.errors["consent"] = _(
            "Consent: tick the box to agree, or your signature is not sent"
        )
    cleaned.values["wants_notice"] = "yes" if _checked(form, "wants_notice") else ""
    if cleaned.errors:
        raise SignatureInputError(cleaned.errors)
    return cleaned.values


# --- rate limits ---------------------------------------------------------------------------


def client_network(client_ip: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) a client address belongs to: one household or office."""
    return ip_prefix(client_ip.strip()) or "unknown"


def _wait_words(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return ngettext("%(num)d minute", "%(num)d minutes", minutes)


def _count_submission(sign_on: SignOn, address_key: str, client_ip: str) -> None:
    prefix = f"campaign:sign-on:{sign_on.id}"
    # Redis holds a digest of the address, never the address itself.
    digest = hashlib.sha256(address_key.encode()).hexdigest()[:32]
    keys = [
        f"{prefix}:email:{digest}",
        f"{prefix}:net:{client_network(client_ip)}",
        f"{prefix}:all",
    ]
    limits = [PER_EMAIL_PER_HOUR, PER_NETWORK_PER_HOUR, PER_SIGN_ON_PER_HOUR]
    try:
        redis = get_redis()
        full, ttl = count_in_window(redis, keys, limits, RATE_WINDOW_SECONDS)
    except RedisError as error:
        # The limits protect inboxes and editors; signing must not stop when Redis does.
        log.warning("sign-on %s: rate limits not checked: %s", sign_on.id, error)
        return
    if not full:
        return
    wait = _wait_words(ttl)
    messages = {
        1: _l(
            "This e-mail address has been used to sign too often in the last hour. "
            "Try again in %(wait)s."
        ),
        2: _l(
            "Too many signatures came from your network in the last hour. Try again in %(wait)s."
        ),
        3: _l("This page is receiving an unusual number of signatures. Try again in %(wait)s."),
    }
    raise SigningTooOften(str(messages[full]) % {"wait": wait}, ttl)


# --- confirmation links --------------------------------------------------------------------


def _token_for(signature: Signature, *, change: bool = False) -> str:
    """The link's secret: derived, with the server's key, from the row and its expiry, so
    the worker can write the link the web request made without the token being stored.
    A change's link (`change`) has a purpose of its own: neither link opens the other."""
    expires = signature.change_expires_at if change else signature.confirm_expires_at
    assert expires is not None
    stamp = (expires - _EPOCH) // timedelta(microseconds=1)  # exact, unlike a float
    purpose = "signature-change" if change else "signature-confirm"
    message = f"{purpose}:{signature.id}:{stamp}".encode()
    key = str(current_app.config["SECRET_KEY"]).encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _issue_link(signature: Signature, now: datetime) -> None:
    """A new link for the signature; any earlier one stops working."""
    expires = now + LINK_LIFETIME
    if signature.confirm_expires_at is not None and expires <= signature.confirm_expires_at:
        # Two forms in the same microsecond (or a clock set back) still get two links.
        expires = signature.confirm_expires_at + timedelta(microseconds=1)
    signature.confirm_expires_at = expires
    db.session.flush()  # the id is part of the token
    signature.confirm_hash = _hash(_token_for(signature))


def _issue_change_link(signature: Signature, now: datetime) -> None:
    """A new link for the signature's pending change; an earlier change's link stops."""
    expires = now + LINK_LIFETIME
    if signature.change_expires_at is not None and expires <= signature.change_expires_at:
        expires = signature.change_expires_at + timedelta(microseconds=1)
    signature.change_expires_at = expires
    signature.change_hash = _hash(_token_for(signature, change=True))


def _drop_change(signature: Signature) -> None:
    signature.pending_change = None
    signature.change_hash = None
    signature.change_expires_at = None


def confirm_url(token: str) -> str:
    return f"{public_url()}{CONFIRM_PATH}{token}"


def sign_url(sign_on: SignOn) -> str:
    return f"{public_url()}{SIGN_PATH}{sign_on.token}"


# --- submitting ----------------------------------------------------------------------------


def _existing(sign_on: SignOn, address_key: str, signer_key: str) -> Signature | None:
    return db.session.scalar(
        select(Signature).where(
            Signature.sign_on_id == sign_on.id,
            Signature.email_key == address_key,
            Signature.name_key == signer_key,
        )
    )


_LINE_FIELDS = ("kind", "name", "acronym", "role", "organisation", "country", "exile_country")
# From most to least public (as sign_on_moderation's merge ranks them).
_PRIVACY = (PublishAs.FULL.value, PublishAs.ORGANISATION_ONLY.value, PublishAs.WITHHELD.value)


def _fill(signature: Signature, values: Mapping[str, Any], language: str, now: datetime) -> None:
    """A signature as the signer's own form (or a change they confirmed) has it."""
    _fill_line(signature, values)
    signature.email = values["email"]
    signature.language = language[:10]
    signature.consented_at = now


def _fill_line(signature: Signature, values: Mapping[str, Any]) -> None:
    """What the form says about the signature, without the language the form was read in
    or how the address was spelt: a later form may come from anyone who knows the
    address, and must not choose the language of the signer's e-mails (decision 0038)."""
    for name in _LINE_FIELDS:
        setattr(signature, name, values[name])
    signature.publish_as = values["publish_as"]
    signature.wants_notice = bool(values["wants_notice"])


def _what_it_says(source: Signature | Mapping[str, Any]) -> dict[str, Any]:
    """Everything a form decides about a signature except the language it was read in."""

    def get(name: str) -> Any:
        return source[name] if isinstance(source, Mapping) else getattr(source, name)

    # The address is the same one (the same key found the row); how it is spelt changes
    # nothing anyone reads, so it is not a change to confirm.
    said: dict[str, Any] = {name: str(get(name) or "") for name in (*_LINE_FIELDS, "publish_as")}
    said["wants_notice"] = bool(get("wants_notice"))
    return said


def _only_more_private(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """The later form differs only by a more private publishing choice."""
    if {**before, "publish_as": ""} != {**after, "publish_as": ""}:
        return False
    rank = {choice: index for index, choice in enumerate(_PRIVACY)}
    return rank.get(after["publish_as"], -1) > rank.get(before["publish_as"], len(_PRIVACY))


def _again(
    sign_on: SignOn,
    signature: Signature,
    values: Mapping[str, str],
    language: str,
    now: datetime,
) -> SubmitResult:
    """The same address and name a second time."""
    if signature.status != SignatureStatus.UNCONFIRMED.value:
        if signature.status in (SignatureStatus.CONFIRMED.value, SignatureStatus.APPROVED.value):
            queue_notice("signature_already_signed", signature.id)
        return SubmitResult(SubmitOutcome.ALREADY_SIGNED, signature.id)
    # Not confirmed yet. Whoever knows the signer's address and name can send the form, so
    # the same values (a lost e-mail) or a more private choice apply at once, with a fresh
    # link; anything else waits for the signer to confirm it from the e-mail describing it,
    # and the first choice and its link stand meanwhile (decision 0038).
    before, after = _what_it_says(signature), _what_it_says(values)
    if after != before and not _only_more_private(before, after):
        signature.pending_change = {**after, "email": values["email"], "language": language[:10]}
        _issue_change_link(signature, now)
        db.session.flush()
        record_event(
            "signature.change_requested",
            target_type="signature",
            target_id=signature.id,
            detail={"sign_on_id": sign_on.id},
            network_only=True,
        )
        queue_notice("signature_change", signature.id)
        return SubmitResult(SubmitOutcome.CHANGE_PENDING, signature.id)
    _fill_line(signature, values)
    _drop_change(signature)
    _issue_link(signature, now)
    db.session.flush()
    record_event(
        "signature.resend",
        target_type="signature",
        target_id=signature.id,
        detail={"sign_on_id": sign_on.id},
        network_only=True,
    )
    queue_notice("signature_confirmation", signature.id)
    return SubmitResult(SubmitOutcome.RESENT, signature.id)


def paused_reason() -> str:
    """Why the public form takes nothing while a restore hold stands ("" when it does)."""
    if sending_is_held():
        return _("Signing is paused for a while; please try again later.")
    return ""


def submit_signature(
    sign_on: SignOn,
    form: Mapping[str, str],
    *,
    language: str,
    client_ip: str,
    now: datetime | None = None,
) -> SubmitResult:
    """Record a signature from the public form (unconfirmed) and e-mail its link after commit.

    Raises SignOnClosed, SignatureInputError (every wrong field) or SigningTooOften.
    """
    now = now or datetime.now(UTC)
    if str(form.get(HONEYPOT_FIELD, "")).strip():
        # Only a program fills a field nobody sees; it is answered as a person would be.
        return SubmitResult(SubmitOutcome.IGNORED)
    if not accepting(sign_on, now):
        raise SignOnClosed(closed_reason(sign_on, now))
    paused = paused_reason()
    if paused:
        # A restore hold: the confirmation e-mail could not go out, so nothing is taken.
        raise SignOnClosed(paused)
    values = clean_form(form)
    address_key = email_key(values["email"])
    signer_key = name_key(values["name"])
    _count_submission(sign_on, address_key, client_ip)
    try:
        erased = erased_addresses.is_erased(values["email"])
    except erased_addresses.ErasureKeyMissing as error:
        # Erased people cannot be recognised: the page takes no signature until an operator
        # restores the key file (the log says which; the visitor sees the page closed).
        log.warning("sign-on %s refused a signature: %s", sign_on.id, error)
        raise SignOnClosed(
            _("This statement takes no signatures at the moment: try again later.")
        ) from None
    if erased:
        # A person erased on request: answered as any signer is, nothing stored and nothing
        # e-mailed, so the page tells nobody that the address was ever here (decision 0090).
        return SubmitResult(SubmitOutcome.IGNORED)

    existing = _existing(sign_on, address_key, signer_key)
    if existing is not None:
        return _again(sign_on, existing, values, language, now)
    signature = Signature(
        sign_on_id=sign_on.id,
        email_key=address_key,
        name_key=signer_key,
        status=SignatureStatus.UNCONFIRMED.value,
    )
    _fill(signature, values, language, now)
    try:
        with db.session.begin_nested():
            db.session.add(signature)
            _issue_link(signature, now)
            db.session.flush()
    except IntegrityError:
        # The same form sent twice at once (a double click, two tabs): the other request
        # is recording it and e-mailing its link; this one adds nothing.
        copy = _existing(sign_on, address_key, signer_key)
        return SubmitResult(SubmitOutcome.DOUBLE, copy.id if copy else None)
    record_event(
        "signature.submit",
        target_type="signature",
        target_id=signature.id,
        detail={"sign_on_id": sign_on.id, "statement_id": sign_on.statement_id},
        network_only=True,
    )
    queue_notice("signature_confirmation", signature.id)
    return SubmitResult(SubmitOutcome.NEW, signature.id)


# --- confirming ----------------------------------------------------------------------------


class LinkState(enum.StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    USED = "used"  # the signature is confirmed already (or moderated since)


@dataclass(frozen=True)
class LinkCheck:
    state: LinkState
    signature: Signature
    sign_on: SignOn
    # The link confirms the signature with its pending change (a later form) applied.
    is_change: bool = False

    def appears_as(self) -> str:
        """The signer's line as confirming this link would publish it."""
        if self.is_change and self.signature.pending_change:
            return appears_as_changed(self.signature)
        return appears_as(self.signature, self.signature.language)


class _Changed:
    """A pending change read as the signature it would make (for its signatory line)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)


def appears_as_changed(signature: Signature, language: str = "") -> str:
    """The signer's line as it would print once the pending change is confirmed."""
    pending = signature.pending_change or {}
    language = language or str(pending.get("language") or signature.language)
    changed: Any = _Changed(pending)
    return appears_as(changed, language)


_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")


def check_link(token: str, now: datetime | None = None) -> LinkCheck | None:
    """What a confirmation link would do now (None: no such link); changes nothing."""
    now = now or datetime.now(UTC)
    if not _TOKEN.fullmatch(token):
        return None
    digest = _hash(token)
    is_change = False
    signature = db.session.scalar(select(Signature).where(Signature.confirm_hash == digest))
    if signature is None:
        signature = db.session.scalar(select(Signature).where(Signature.change_hash == digest))
        is_change = True
    if signature is None:
        return None
    sign_on = db.session.get(SignOn, signature.sign_on_id)
    if sign_on is None:
        return None
    expires = signature.change_expires_at if is_change else signature.confirm_expires_at
    if signature.status != SignatureStatus.UNCONFIRMED.value:
        state = LinkState.USED
    elif expires is None or now >= expires or (is_change and not signature.pending_change):
        state = LinkState.EXPIRED
    else:
        state = LinkState.VALID
    return LinkCheck(state, signature, sign_on, is_change)


EXPIRED_MESSAGE = _l("This link has expired. Sign again on the statement's page for a new one.")
UNKNOWN_MESSAGE = _l(
    "This confirmation link is not valid. It may be incomplete, or a newer link was sent "
    "to you: use the most recent e-mail."
)


def confirm_signature(token: str, now: datetime | None = None) -> LinkCheck:
    """Confirm the signature a link belongs to; its state says USED if it was already.

    Raises ConfirmationError for an unknown or expired link. The link's hash is kept, so a
    second use is told "already confirmed" rather than "unknown".
    """
    now = now or datetime.now(UTC)
    check = check_link(token, now)
    if check is None:
        raise ConfirmationError(str(UNKNOWN_MESSAGE))
    if check.state == LinkState.EXPIRED:
        raise ConfirmationError(str(EXPIRED_MESSAGE))
    if check.state == LinkState.USED:
        return check
    # Conditional: of two clicks at once, one confirms and the other finds it confirmed. A
    # change's link confirms only the change it was sent for (a newer form replaces it).
    signature = check.signature
    which = (
        Signature.change_hash == signature.change_hash
        if check.is_change
        else Signature.confirm_hash == signature.confirm_hash
    )
    pending = dict(signature.pending_change or {}) if check.is_change else None
    result = db.session.execute(
        update(Signature)
        .where(
            Signature.id == signature.id,
            Signature.status == SignatureStatus.UNCONFIRMED.value,
            which,
        )
        .values(status=SignatureStatus.CONFIRMED.value, confirmed_at=now, pending_change=None)
        .execution_options(synchronize_session=False)
    )
    claimed = int(getattr(result, "rowcount", 0) or 0)
    db.session.refresh(signature)
    if not claimed:
        return LinkCheck(LinkState.USED, signature, check.sign_on, check.is_change)
    if pending:
        _fill(signature, pending, str(pending.get("language") or signature.language), now)
        db.session.flush()
        record_event(
            "signature.change_confirmed",
            target_type="signature",
            target_id=signature.id,
            detail={"sign_on_id": check.sign_on.id},
            network_only=True,
        )
    record_event(
        "signature.confirm",
        target_type="signature",
        target_id=check.signature.id,
        detail={"sign_on_id": check.sign_on.id},
        network_only=True,
    )
    record_webhook_event(
        WebhookEventType.SIGNATURE_CONFIRMED, webhook_payloads.signature_event(signature.id, now)
    )
    return LinkCheck(LinkState.VALID, signature, check.sign_on, check.is_change)


# --- what the signer reads -----------------------------------------------------------------


@dataclass(frozen=True)
class PublicText:
    language: str
    languages: tuple[str, ...]
    title: str
    html: str  # "" when the text cannot be shown
    is_broken: bool = False


def page_language(
    available: Sequence[str],
    requested: str | None = "",
    accepted: Sequence[str] = (),
    stored: str | None = "",
) -> str:
    """The statement language for a reader: an explicit ?lang= first, then the language
    stored for them (a signer's), then the browser's languages, then the statement's first.

    A requested value that is not a language tag, or one the statement lacks, is passed
    over silently: a visitor who typed ?lang=xx still gets the page.
    """
    for wanted in (requested, stored, *accepted):
        tag = normalise_tag(wanted)
        if not tag:
            continue
        found = match_language(str(wanted).strip(), available) or match_language(tag, available)
        if found is not None:
            return found
    return available[0] if available else "en"


def _source(sign_on: SignOn) -> tuple[Statement, LetterSource]:
    statement = db.session.get(Statement, sign_on.statement_id)
    assert statement is not None
    return statement, letter_source(statement)


def statement_title(sign_on: SignOn, language: str = "") -> str:
    """The statement's name as a reader of `language` (a statement language) reads it."""
    statement, source = _source(sign_on)
    return reader_title(source, language, statement.title)


def reader_title(source: LetterSource, language: str, fallback: str = "") -> str:
    """The statement's name for a reader of `language`: the title in the statement's first
    language (the title is written with its first text), else the subject of that
    language's own text, read as on the public page (addressed to nobody), else the title.

    A Russian signer reads "Перед саммитом" above the Russian text, on the confirmation
    pages and in their e-mails' subjects, not the English title the editors gave it.
    """
    title = clean_line(source.title or fallback)
    languages = source.languages
    found = match_language(language, languages) if language else None
    if found is None or found == languages[0]:
        return title
    subject_source, _body = source.text(found)
    try:
        subject = render(subject_source, _nobody(source, found), html=False, lang=found)
    except RenderError as error:
        log.warning(
            "statement %s: the %s subject cannot be shown: %s", source.statement_id, found, error
        )
        return title
    return clean_line(subject) or title


def _nobody(source: LetterSource, language: str) -> dict[str, Any]:
    """What a statement's text sees on the public page: addressed to nobody, no salutation,
    no closing, no contact fields (they read as empty)."""
    return {
        "salutation": "",
        "closing": "",
        "contact": contact_context(object(), language),
        "today": datetime.now(UTC).date(),
        "statement": {"title": source.title},
        "cases": [],
        "address_block": "",
        # The page lists the signatories itself, as each chose to be published.
        "signatories": "",
    }


def statement_languages(sign_on: SignOn) -> tuple[str, ...]:
    """The languages the statement's latest text is written in, its first language first."""
    return tuple(_source(sign_on)[1].languages)


def signer_language(
    sign_on: SignOn, requested: str | None = "", accepted: Sequence[str] = (), stored: str = ""
) -> str:
    """The language of the text the signer reads (their e-mails follow it)."""
    return page_language(statement_languages(sign_on), requested, accepted, stored)


def public_text(
    sign_on: SignOn, requested: str | None = "", accepted: Sequence[str] = ()
) -> PublicText:
    """The statement as the latest version has it, in the reader's language, addressed to
    nobody: no salutation, no closing, no contact fields (they read as empty)."""
    statement, source = _source(sign_on)
    languages = tuple(source.languages)
    if not languages:
        return PublicText("en", (), source.title or statement.title, "", True)
    language = page_language(languages, requested, accepted)
    _subject, body = source.text(language)
    title = reader_title(source, language, statement.title)
    try:
        rendered = render_body(body, _nobody(source, language), lang=language)
    except RenderError as error:
        log.warning("sign-on %s: the %s text cannot be shown: %s", sign_on.id, language, error)
        return PublicText(language, languages, title, "", True)
    return PublicText(language, languages, title, rendered.html)


# --- e-mails -------------------------------------------------------------------------------

SUBJECTS = {
    "signature_confirmation": _l("Confirm your signature: %(title)s"),
    "signature_already_signed": _l("You have already signed: %(title)s"),
    "signature_change": _l("Confirm a change to your signature: %(title)s"),
}
TEMPLATES = {
    "signature_confirmation": "email/signature_confirmation.txt",
    "signature_already_signed": "email/signature_confirmation_again.txt",
    "signature_change": "email/signature_change.txt",
}


def email_language(language: str) -> str:
    """The language a signer's e-mails are written in: theirs if we have a catalogue, else en."""
    primary = primary_language(language or "en")
    return primary if primary in EMAIL_LANGUAGES else "en"


def _signer_email(
    kind: str, signature: Signature, *, reader_language: str = "", **extra: str
) -> Notice:
    sign_on = db.session.get(SignOn, signature.sign_on_id)
    statement = db.session.get(Statement, sign_on.statement_id) if sign_on else None
    assert sign_on is not None and statement is not None
    reader_language = reader_language or signature.language
    language = email_language(reader_language)
    # The name of the text they signed, as its page showed it (its own subject).
    title = reader_title(letter_source(statement), reader_language, statement.title)
    with force_locale(language):
        text = render_template(
            TEMPLATES[kind],
            title=title,
            name=clean_line(signature.name),
            appears_as=appears_as(signature, language),
            sign_url=sign_url(sign_on),
            hours=int(LINK_LIFETIME.total_seconds() // 3600),
            **extra,
        )
        subject = str(SUBJECTS[kind]) % {"title": title}
    # Content-Language is the language the words above were written in.
    message = build_message(signature.email, subject, text, language=language)
    return Notice(signature.email, _crlf(message))


def appears_as(signature: Signature, language: str = "en") -> str:
    """The signer's line exactly as the letters will print it (the withheld line if so):
    whoever knows an unconfirmed signer's address and name can send the form again with
    another choice, so the signer sees the choice before confirming it."""
    return clean_line(signatory_line(as_signatory_values(signature), language))


def _crlf(message: bytes) -> bytes:
    """Lines end in CRLF, as SMTP DATA requires (RFC 5321 2.3.8): a message serialised with
    bare LFs reads as one overlong line to a strict server. A no-op on CRLF input."""
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def confirmation_email(signature_id: int) -> list[Notice]:
    signature = db.session.get(Signature, signature_id)
    if signature is None or signature.status != SignatureStatus.UNCONFIRMED.value:
        return []
    if signature.confirm_hash is None or signature.confirm_expires_at is None:
        return []
    token = _token_for(signature)
    if _hash(token) != signature.confirm_hash:
        # The server's key changed since the link was made: the signer can ask again.
        log.warning("signature %s: link made with another secret key; not sent", signature.id)
        return []
    if datetime.now(UTC) >= signature.confirm_expires_at:
        return []
    return [_signer_email("signature_confirmation", signature, link=confirm_url(token))]


def change_email(signature_id: int) -> list[Notice]:
    """The e-mail for a later form that would change an unconfirmed signature: what the
    signer's line is now, what it would become, and the link that applies the change."""
    signature = db.session.get(Signature, signature_id)
    if signature is None or signature.status != SignatureStatus.UNCONFIRMED.value:
        return []
    pending = signature.pending_change
    if not pending or signature.change_hash is None or signature.change_expires_at is None:
        return []
    token = _token_for(signature, change=True)
    if _hash(token) != signature.change_hash:
        log.warning(
            "signature %s: change link made with another secret key; not sent", signature.id
        )
        return []
    if datetime.now(UTC) >= signature.change_expires_at:
        return []
    # In the signer's language, not the later form's: whoever sent it may not be the signer.
    language = email_language(signature.language)
    return [
        _signer_email(
            "signature_change",
            signature,
            link=confirm_url(token),
            appears_now=appears_as(signature, language),
            appears_after=appears_as_changed(signature, language),
        )
    ]


def already_signed_email(signature_id: int) -> list[Notice]:
    signature = db.session.get(Signature, signature_id)
    done = (SignatureStatus.CONFIRMED.value, SignatureStatus.APPROVED.value)
    if signature is None or signature.status not in done:
        return []
    return [_signer_email("signature_already_signed", signature)]
