"""Statement files sent with letters: each file's language, a campaign's choice of files, the
files each letter carries, and the message size the SMTP server will accept (decision 0044).

A file with language "" goes with every letter; a file in one of the statement's languages
goes only with letters in that language (so an annex in French and its English translation
are two files, one per language). Only the first letter carries files: a follow-up answers
it in the same thread and does not send the annexes again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from redis.exceptions import RedisError
from sqlalchemy import select

from campaign.extensions import db
from campaign.i18n import language_name
from campaign.letters.letter import match_language
from campaign.mail import Attachment
from campaign.models import Campaign, Statement, StatementAttachment
from campaign.queue import get_redis
from campaign.services.sending.errors import CampaignError
from campaign.services.sending.smtp_accounts import settings_for
from campaign.services.statements.statements import (
    StatementError,
    attachment_file,
    clean_file_language,
    record_version,
)

log = logging.getLogger(__name__)

# Above this, per message (after base64), the check warns: many providers refuse 10 MB and
# more, and a recipient's mailbox may be small.
WARN_BYTES = 10 * 1024 * 1024
# What a letter weighs besides its files, for the estimate: the text and HTML parts with
# their layout, and the generated PDF when the campaign attaches it.
LETTER_ALLOWANCE = 64 * 1024
PDF_ALLOWANCE = 300 * 1024
# A server's SIZE is asked once in this many seconds per account (kept in Redis).
PROBE_SECONDS = 300
# The whole question (connect, TLS, EHLO, login) gets this long, however the server drips.
PROBE_DEADLINE = 10.0


def set_file_language(attachment: StatementAttachment, language: str, *, actor: Any = None) -> bool:
    """Give a statement file its letter language; records a version when it changes."""
    statement = db.session.get(Statement, attachment.statement_id)
    assert statement is not None
    cleaned = clean_file_language(statement, language)
    if cleaned == attachment.language:
        return False
    attachment.language = cleaned
    db.session.flush()
    record_version(
        statement,
        f"attachment language: {attachment.filename} -> {cleaned or 'every language'}",
        actor=actor,
    )
    return True


def choose_files(campaign: Campaign, ids: Iterable[str | int]) -> list[int]:
    """Set the campaign's attached files (ids of its statement's files); CampaignError."""
    own = {
        a.id: a
        for a in db.session.scalars(
            select(StatementAttachment).where(
                StatementAttachment.statement_id == campaign.statement_id
            )
        )
    }
    chosen: list[int] = []
    for value in ids:
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = -1
        if number not in own:
            raise CampaignError(
                _l(
                    "Files: %(value)s is not a file of the campaign's statement (it may have "
                    "been deleted, or the statement changed); choose again",
                    value=str(value),
                ),
                "attached_file_ids",
            )
        if number not in chosen:
            chosen.append(number)
    campaign.attached_file_ids = chosen  # a new list: the JSON column notices assignment
    db.session.flush()
    return chosen


# --- sending --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LetterFile:
    language: str  # "" for every letter
    attachment: Attachment


class FileMissing(LookupError):
    """A chosen file cannot be read as it was stored; `message` (lazy) names it."""

    def __init__(self, message: LazyString) -> None:
        super().__init__(message)
        self.message = message


def _frozen_entries(campaign: Campaign, snapshot: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The chosen files as the frozen version recorded them (id, filename, language)."""
    chosen = list(campaign.attached_file_ids or [])
    if not chosen:
        return []
    frozen = {
        entry.get("id"): entry
        for entry in (snapshot or {}).get("attachments") or ()
        if isinstance(entry, Mapping) and entry.get("id") is not None
    }
    entries = []
    for file_id in chosen:
        entry = frozen.get(file_id)
        if entry is None:
            row = db.session.get(StatementAttachment, file_id)
            # Only the campaign's statement's own files (the statement may have changed).
            if row is None or row.statement_id != campaign.statement_id:
                continue
            entry = {"id": row.id, "filename": row.filename, "language": row.language}
        entries.append(dict(entry))
    return entries


def campaign_files(campaign: Campaign, snapshot: Mapping[str, Any] | None) -> list[LetterFile]:
    """Read the campaign's chosen files once (for a batch of letters); FileMissing."""
    files = []
    for entry in _frozen_entries(campaign, snapshot):
        row = db.session.get(StatementAttachment, entry["id"])
        name = str(entry.get("filename") or "")
        if row is None:
            raise FileMissing(
                _l("the attached file %(name)s was deleted; restore it or cancel", name=name)
            )
        try:
            data = attachment_file(row).read_bytes()
        except (OSError, StatementError) as error:
            raise FileMissing(
                _l(
                    "the attached file %(name)s cannot be read (%(reason)s); restore it, then "
                    "resume",
                    name=name,
                    reason=str(error),
                )
            ) from None
        expected = str(entry.get("sha256") or row.sha256)
        if hashlib.sha256(data).hexdigest() != expected:
            raise FileMissing(
                _l(
                    "the attached file %(name)s changed on disk since it was stored; restore "
                    "it, then resume",
                    name=name,
                )
            )
        files.append(
            LetterFile(str(entry.get("language") or ""), Attachment(name, row.content_type, data))
        )
    return files


def files_for(files: Sequence[LetterFile], language: str) -> list[Attachment]:
    """The files a letter in `language` carries: those for every language, and those of the
    one file language that serves it best ("fr" letters get the "fr" files, not "fr-BE")."""
    best = _best_language([f.language for f in files], language)
    return [f.attachment for f in files if not f.language or f.language == best]


def _best_language(tags: Iterable[str], language: str) -> str | None:
    """The file language a letter in `language` reads: its own tag, else the nearest."""
    distinct = list(dict.fromkeys(tag for tag in tags if tag))
    return match_language(language, distinct) if language and distinct else None


# --- size, for the pre-send check -----------------------------------------------------------


def _encoded(size: int) -> int:
    """Bytes after base64 (4 for every 3, lines of 76 with CRLF)."""
    raw = (size + 2) // 3 * 4
    return raw + raw // 76 * 2


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}"


@dataclass(frozen=True)
class SizeProbe:
    """What the account's server said of its size limit."""

    # The SIZE it announces in EHLO; None if it names none or could not be asked.
    limit: int | None = None
    # Why it could not be asked ("" when it was).
    reason: str = ""
    # It did not answer within PROBE_DEADLINE.
    timed_out: bool = False


def _probe_key(settings: Any) -> str:
    account = f"{settings.key}|{settings.host}:{settings.port}|{settings.security}"
    return "campaign:smtp-size:" + hashlib.sha256(account.encode()).hexdigest()[:32]


def server_size_limit(settings: Any) -> SizeProbe:
    """The account's EHLO SIZE, asked within PROBE_DEADLINE and kept PROBE_SECONDS in Redis
    (every web and worker process shares it; without Redis it is asked each time)."""
    key = _probe_key(settings)
    try:
        cached = get_redis().get(key)
    except RedisError:
        log.warning("the SMTP size limit is not cached: Redis is unreachable", exc_info=True)
        cached = None
    if cached is not None:
        with contextlib.suppress(ValueError, TypeError):
            return SizeProbe(**json.loads(cached))
    probe = _probe_within(settings, PROBE_DEADLINE)
    with contextlib.suppress(RedisError):
        get_redis().set(key, json.dumps(dataclasses.asdict(probe)), ex=PROBE_SECONDS)
    return probe


def _probe_within(settings: Any, deadline: float) -> SizeProbe:
    """Ask in a thread and give up at the deadline, cutting the connection: smtplib's
    timeout counts each read alone, so a server sending a byte a second holds it for ever."""
    from campaign.smtp import SmtpConnection

    connection = SmtpConnection(settings)
    found: list[SizeProbe] = []
    answered = threading.Event()

    def ask() -> None:
        try:
            limit, refused = connection.size_limit()
            found.append(SizeProbe(limit, refused.summary if refused is not None else ""))
        except Exception as error:  # the thread must say something, whatever happened
            found.append(SizeProbe(None, type(error).__name__))
        answered.set()
        connection.close()

    ends = time.monotonic() + deadline
    thread = threading.Thread(target=ask, name="smtp-size-probe", daemon=True)
    thread.start()
    in_time = answered.wait(deadline)
    # QUIT gets what is left of the deadline; then the socket is cut (again, if it was
    # still being opened the first time), so the thread ends too.
    thread.join(max(0.0, ends - time.monotonic()))
    while thread.is_alive() and time.monotonic() < ends + 5:
        connection.abort()
        thread.join(0.2)
    # Cut at the deadline, the thread may still report the broken read: it is the deadline.
    if in_time and found:
        return found[0]
    return SizeProbe(None, "", timed_out=True)


def size_probe(campaign: Campaign) -> SizeProbe | None:
    """Ask the campaign's server for its size limit now (outside any row lock), when the
    check will need it: None when no file is chosen or the account cannot be used."""
    if not campaign.attached_file_ids:
        return None
    try:
        settings = settings_for(campaign.smtp_account)
    except Exception:  # the check says why in its own words
        return None
    return server_size_limit(settings)


def size_problems(
    campaign: Campaign, probed: SizeProbe | None = None
) -> tuple[list[LazyString], list[LazyString]]:
    """(errors, warnings) about the size of the campaign's messages with their files;
    `probed` is the server's answer when the caller asked already (size_probe)."""
    statement = db.session.get(Statement, campaign.statement_id)
    chosen = [
        row
        for file_id in campaign.attached_file_ids or []
        if (row := db.session.get(StatementAttachment, file_id)) is not None
        and row.statement_id == campaign.statement_id
    ]
    if statement is None or not chosen:
        return [], []
    errors: list[LazyString] = []
    warnings: list[LazyString] = []
    languages = list(statement.languages) or [""]
    base = LETTER_ALLOWANCE + (_encoded(PDF_ALLOWANCE) if campaign.is_pdf_attached else 0)
    # The heaviest letter: the language whose files weigh most.
    heaviest, heaviest_files = "", list[StatementAttachment]()
    for language in languages:
        best = _best_language([row.language for row in chosen], language)
        files = [row for row in chosen if not row.language or row.language == best]
        if sum(r.size_bytes for r in files) >= sum(r.size_bytes for r in heaviest_files):
            heaviest, heaviest_files = language, files
    total = base + sum(_encoded(r.size_bytes) for r in heaviest_files)
    listed = ", ".join(f"{r.filename} ({_mb(r.size_bytes)} MB)" for r in heaviest_files)
    where = language_name(heaviest) if heaviest else ""
    if probed is None:
        try:
            probed = server_size_limit(settings_for(campaign.smtp_account))
        except Exception as error:  # an unreadable password, a bad account: not this check's
            probed = SizeProbe(None, type(error).__name__)
    limit, unreachable = probed.limit, probed.reason
    if limit and total > limit:
        errors.append(
            _l(
                "Files: a letter in %(language)s weighs about %(total)s MB once encoded "
                "(%(files)s, plus the letter); the SMTP server accepts at most %(limit)s MB "
                "per message (EHLO SIZE %(bytes)d) and would refuse it; attach fewer or "
                "smaller files",
                language=where,
                total=_mb(total),
                files=listed,
                limit=_mb(limit),
                bytes=limit,
            )
        )
    elif total > WARN_BYTES:
        warnings.append(
            _l(
                "Files: a letter in %(language)s weighs about %(total)s MB once encoded "
                "(%(files)s, plus the letter); above %(warn)s MB many recipients' servers "
                "refuse or delay mail; consider a link instead",
                language=where,
                total=_mb(total),
                files=listed,
                warn=_mb(WARN_BYTES),
            )
        )
    if probed.timed_out:
        warnings.append(
            _l(
                "Files: the SMTP server could not be asked for its size limit (it did not "
                "answer in time, within %(seconds)d seconds); letters of about %(total)s MB "
                "may be refused",
                seconds=round(PROBE_DEADLINE),
                total=_mb(total),
            )
        )
    elif unreachable:
        warnings.append(
            _l(
                "Files: the SMTP server could not be asked for its size limit (%(reason)s); "
                "letters of about %(total)s MB may be refused",
                reason=unreachable,
                total=_mb(total),
            )
        )
    return errors, warnings


def add_size_problems(campaign: Campaign, check: Any, probed: SizeProbe | None = None) -> None:
    """Add the size errors and warnings to a CampaignCheck (services.campaigns)."""
    from campaign.scheduling.stored_text import said

    errors, warnings = size_problems(campaign, probed)
    check.errors.extend(said(problem) for problem in errors)
    check.warnings.extend(said(problem) for problem in warnings)
