"""One letter, complete: merged for a contact, laid out, its PDF, and the message bytes."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from campaign.extensions import db
from campaign.letters.letter import render_letter
from campaign.letters.salutations import RuleSet
from campaign.letters.types import RenderedLetter
from campaign.mail import (
    Attachment,
    LetterParts,
    MessageError,
    build_message,
    letter_parts,
    organisation_name,
)
from campaign.models import Suppression
from campaign.services.contacts.contacts import normalise_email
from campaign.services.contacts.suppressions import is_suppressed
from campaign.services.privacy import erased_addresses
from campaign.services.statements.files import files_for
from campaign.services.statements.organisation import letterhead
from campaign.services.statements.salutation_rules import current_rule_set
from campaign.services.statements.statements import letter_source


@dataclass(frozen=True)
class ComposedLetter:
    letter: RenderedLetter
    parts: LetterParts
    pdf: bytes | None
    # The RFC 5322 bytes as they would be sent; None when the letter cannot be sent.
    message: bytes | None
    # Why there is no message (letter errors are in letter.problems).
    error: str = ""
    pdf_filename: str = "letter.pdf"


class LetterCache:
    """What the letters of one short run (a send batch, a pre-send check) may share.

    Today: whether each copy (Cc) address is suppressed, looked up once per run, or for a
    whole batch in one query (`preload_copies`). The merge, Markdown, wrapping and header
    caches are process-wide and need no holder (decision 0072). Hold one per batch: a copy
    address suppressed while the batch runs still gets its copy until the batch ends.
    """

    __slots__ = ("_suppressed",)

    def __init__(self) -> None:
        self._suppressed: dict[str, bool] = {}

    def preload_copies(self, addresses: Iterable[str]) -> None:
        """Look up the suppression of all these copy addresses at once (one query per 500)."""
        keys: dict[str, str] = {}
        for address in addresses:
            if address in self._suppressed or address in keys:
                continue
            try:
                keys[address] = normalise_email(address)[1]
            except ValueError:
                self._suppressed[address] = False  # as is_suppressed: no key, not listed
        wanted = sorted(set(keys.values()))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            found.update(
                db.session.scalars(
                    select(Suppression.email_key).where(
                        Suppression.email_key.in_(wanted[start : start + 500])
                    )
                )
            )
        # A person erased on request is on the list by a keyed hash (decision 0090).
        erased = erased_addresses.copy_key_test() if keys else None
        for address, key in keys.items():
            self._suppressed[address] = key in found or (erased is not None and erased(key))

    def is_suppressed(self, address: str) -> bool:
        known = self._suppressed.get(address)
        if known is None:
            known = self._suppressed[address] = is_suppressed(address)
        return known


def compose_letter(
    statement: Any,
    contact: object,
    *,
    language: str | None = None,
    with_pdf: bool | None = None,
    rules: RuleSet | None = None,
    today: date | None = None,
    sender: str | None = None,
    reply_to: str | None = None,
    message_id: str | None = None,
    extra_headers: Mapping[str, str] | None = None,
    attach_pdf: bool | None = None,
    html_transform: Callable[[str], str] | None = None,
    cases: Sequence[Mapping[str, Any]] = (),
    fixed_subject: str | None = None,
    files: Sequence[Any] = (),
    to: tuple[str, str] | None = None,
    cache: LetterCache | None = None,
) -> ComposedLetter:
    """Merge `statement` (a Statement or StatementVersion) for `contact` and build it whole.

    The PDF is made (and attached) when the statement asks for one, or `attach_pdf` (a
    campaign's choice) says so; `with_pdf` makes it for a preview without attaching it.
    A campaign passes its sender, Reply-To, the delivery's fixed Message-ID and its
    List-Unsubscribe headers; a preview leaves them to the defaults.
    `html_transform` changes the laid-out HTML part only (a campaign's opt-in tracking).
    `cases` is the campaign's `cases` merge data (services/cases.cases_context).
    `fixed_subject` is a subject already merged, used as written (a follow-up's "Re: " +
    the subject the ledger kept of that person's first letter).
    `files` are the statement files a campaign chose (statement_files.LetterFile): the
    letter carries those for every language and those of its own language.
    `to` (display name, address) replaces the contact in To and drops the Cc (a test letter
    to staff: a reply-all must not write to the contact).
    `cache` (optional) is shared by the letters of one batch or check (LetterCache).
    Raises LanguageUnavailable when `language` is forced and the statement lacks it.
    """
    source = letter_source(statement)
    letter = render_letter(
        source,
        contact,
        language=language,
        rules=rules or current_rule_set(),
        today=today,
        cases=cases,
        fixed_subject=fixed_subject,
    )
    if to is not None:
        letter = replace(letter, to_name=to[0], to_address=to[1], cc_addresses=())
    if letter.cc_addresses:
        # A copy address that bounced for good (or asked to be left alone) gets no copy.
        suppressed = cache.is_suppressed if cache is not None else is_suppressed
        kept = tuple(cc for cc in letter.cc_addresses if not suppressed(cc))
        if kept != letter.cc_addresses:
            letter = replace(letter, cc_addresses=kept)
    sender = sender or str(current_app.config["MAIL_DEFAULT_SENDER"])
    organisation = organisation_name(sender)
    letter_date = letter.letter_date or today or datetime.now(UTC).date()
    parts = letter_parts(letter, organisation=organisation, letter_date=letter_date)
    if html_transform is not None and not letter.has_errors:
        parts = replace(parts, html=html_transform(parts.html))
    if attach_pdf is None:
        attach_pdf = bool(source.snapshot.get("is_pdf_attached"))
    wants_pdf = attach_pdf or bool(with_pdf)
    filename = pdf_filename(letter, letter_date, fallback=source.title)
    pdf: bytes | None = None
    if wants_pdf and not letter.has_errors:
        from campaign.letters.pdf import PdfError, letter_pdf

        try:
            pdf = letter_pdf(
                letter,
                organisation=organisation,
                letter_date=letter_date,
                letterhead=letterhead(organisation),
            )
        except PdfError as error:
            return ComposedLetter(letter, parts, None, None, str(error), filename)
    if letter.has_errors:
        return ComposedLetter(letter, parts, pdf, None, _("the letter has errors"), filename)
    # A PDF made only for a preview is shown, not attached.
    attachments = [Attachment(filename, "application/pdf", pdf)] if attach_pdf and pdf else []
    if files:
        attachments += files_for(files, letter.language)
    try:
        message = build_message(
            letter,
            sender=sender,
            reply_to=reply_to or None,
            message_id=message_id,
            extra_headers=extra_headers,
            attachments=attachments,
            organisation=organisation,
            letter_date=letter_date,
            parts=parts,
        )
    except MessageError as error:
        return ComposedLetter(letter, parts, pdf, None, str(error), filename)
    return ComposedLetter(letter, parts, pdf, message, "", filename)


def pdf_filename(letter: RenderedLetter, letter_date: date, *, fallback: str = "") -> str:
    """The PDF's name in the letter's language: "Lettre conjointe – 2026-12-10.pdf".

    The merged subject of the letter's language (a follow-up's "Re: " left off) stands for
    the title: a statement has one title, in one language, and a subject per language
    (decision 0043); else the statement's title, then the date. Characters file systems
    refuse (/ \\ : * ? " < > | and controls) go: one that separated words leaves " – "
    ("Turkmenistan: prisoner" → "Turkmenistan – prisoner"), one inside a word "-"
    ("A/HRC/55" → "A-HRC-55"); a name over 80 characters is cut between words, with "…".
    """
    title = _pdf_title(letter.subject, fallback, letter.language)
    return f"{title} – {letter_date.isoformat()}.pdf"


# Every letter of a campaign in one language has the same subject: its title is made once.
@lru_cache(maxsize=256)
def _pdf_title(subject: str, fallback: str, language: str) -> str:
    title = _safe_filename(_REPLY_PREFIX.sub("", subject)) or _safe_filename(fallback)
    if not title:
        with force_locale(language.replace("-", "_")):
            title = _safe_filename(_("Letter"))
    return _shortened(title)


_REPLY_PREFIX = re.compile(r"^\s*((re|aw|fwd?|tr|отв|ответ)\s*:\s*)+", re.IGNORECASE)
_INVISIBLE_IN_FILENAME = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)
# Quotes, angle brackets and asterisks enclose or stress words: dropped.
_ENCLOSING_IN_FILENAME = re.compile(r'["<>*]')
# Separators and sentence marks: a run of them, with the spaces around.
_SEPARATING_IN_FILENAME = re.compile(r"\s*[/\\:|?](?:\s*[/\\:|?])*\s*")
_FILENAME_TITLE_LIMIT = 80


def _separator(match: re.Match[str]) -> str:
    text = match.string
    if match.start() == 0 or match.end() == len(text):
        return " "  # nothing to separate: a leading or closing mark ("… released?")
    if match.group().strip() != match.group():
        return " – "  # it stood between words: "Turkmenistan: prisoner", "A / B"
    return "-"  # inside a word: "A/HRC/55", "10:30"


def _safe_filename(text: str) -> str:
    text = _INVISIBLE_IN_FILENAME.sub(" ", text)
    text = _ENCLOSING_IN_FILENAME.sub("", text)
    text = " ".join(text.split())
    text = _SEPARATING_IN_FILENAME.sub(_separator, text)
    return " ".join(text.split()).strip(" .")


def _shortened(title: str) -> str:
    """`title` within the limit, cut between words and ended with "…" when it is cut."""
    if len(title) <= _FILENAME_TITLE_LIMIT:
        return title
    room = _FILENAME_TITLE_LIMIT - 1  # the ellipsis takes one
    # Whole words only: the last one that fits may end exactly at the limit.
    cut = title[:room] if title[room] == " " else title[:room].rpartition(" ")[0] or title[:room]
    return cut.rstrip(" .,;–-") + "…"
