"""The pre-send check: render a statement for every recipient and report what is wrong.

Nothing is written: the check reads the audience in batches (yield_per) and keeps only the
problems, so it runs over thousands of contacts in little memory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import socket
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from flask_babel.speaklater import LazyString
from sqlalchemy import Select, case, func, select

from campaign.extensions import db
from campaign.i18n import language_name
from campaign.letters.content_checks import (
    NO_LINE,
    SUBJECT_LINE,
    ContentProblem,
    LetterContent,
    check_content,
    salutation_problem,
    value_problems,
)
from campaign.letters.letter import (
    LanguageUnavailable,
    LetterSource,
    contact_context,
    match_language,
    render_letter,
)
from campaign.letters.salutations import RuleSet
from campaign.letters.types import LetterProblem, RenderedLetter
from campaign.mail import message_id_domain
from campaign.models import Contact, RoleType
from campaign.scheduling.stored_text import Text, joined, labelled, said
from campaign.services.statements.statements import letter_source

log = logging.getLogger(__name__)
BATCH_SIZE = 500
# At most this many different bodies of one language are read per check (each reading is a
# parse of the HTML part and a walk over the letter: ~8 ms). Letters that differ only in
# the recipient's values share a reading; beyond the bound the rest are counted and the
# report says that they were not read one by one (the check of 100,000 letters must cost
# about what rendering them costs, decision 0071).
MAX_READINGS = 50
# Roles of people who hold an office: an audience where at least half the recipients hold
# one is "to officials", and a recipient there whose role is `other` gets a warning
# (decision 0047).
OFFICIAL_ROLES = frozenset(RoleType) - {RoleType.JOURNALIST, RoleType.NGO, RoleType.OTHER}


@dataclass(frozen=True)
class ContactProblem:
    """One problem of one recipient's letter."""

    contact_id: int | None
    email: str
    name: str
    language: str
    problem: LetterProblem

    @property
    def who(self) -> str:
        """How the report names the recipient: the address, or the contact number without one."""
        if self.email.strip():
            return self.email
        if self.contact_id is not None:
            return _("contact #%(id)d", id=self.contact_id)
        return _("(no email)")


@dataclass(frozen=True)
class TextProblem:
    """One problem of a statement's text in one language: every letter in it carries it."""

    statement_id: int
    title: str
    language: str
    # In the statement's text of that language, 1-based; SUBJECT_LINE: the subject;
    # NO_LINE: no single line (the text as a whole).
    line: int
    problem: LetterProblem

    @property
    def where(self) -> str:
        """How the report names the place: the statement, the language and the line."""
        return where(self.statement_id, self.title, self.language, self.line)


def where(statement_id: int, title: str, language: str, line: int) -> str:
    return str(_where(statement_id, title, language, line))


def _where(statement_id: int, title: str, language: str, line: int) -> LazyString:
    """The place, read in the reader's language when shown (or stored by the scheduler)."""
    if line > 0:
        return _l(
            "statement %(id)d “%(title)s” (%(language)s), line %(line)d",
            id=statement_id,
            title=title,
            language=language_name(language),
            line=line,
        )
    if line == SUBJECT_LINE:
        return _l(
            "statement %(id)d “%(title)s” (%(language)s), subject",
            id=statement_id,
            title=title,
            language=language_name(language),
        )
    return _l(
        "statement %(id)d “%(title)s” (%(language)s)",
        id=statement_id,
        title=title,
        language=language_name(language),
    )


@dataclass
class PresendReport:
    """What the check found over an audience: per-contact problems and a summary."""

    statement_id: int
    statement_version: int
    checked: int = 0
    problems: list[ContactProblem] = field(default_factory=list)
    # What a reader would see wrong in the text of a language, found once per language.
    text_problems: list[TextProblem] = field(default_factory=list)
    # Recipients per letter language.
    languages: Counter[str] = field(default_factory=Counter)
    # Problems per code ("no_email": 3).
    codes: Counter[str] = field(default_factory=Counter)
    contacts_with_errors: int = 0
    # A stored result keeps the first problems only (decision 0071): the others are
    # counted here, in the errors and warnings, not listed.
    unlisted_errors: int = 0
    unlisted_warnings: int = 0

    @property
    def errors(self) -> int:
        return sum(1 for p in self._all() if p.severity == "error") + self.unlisted_errors

    @property
    def warnings(self) -> int:
        return sum(1 for p in self._all() if p.severity != "error") + self.unlisted_warnings

    @property
    def problem_count(self) -> int:
        """The recipients' problems, listed or not."""
        return len(self.problems) + self.unlisted_errors + self.unlisted_warnings

    def _all(self) -> Iterator[LetterProblem]:
        yield from (p.problem for p in self.text_problems)
        yield from (p.problem for p in self.problems)

    @property
    def has_errors(self) -> bool:
        return self.contacts_with_errors > 0

    def summary(self) -> str:
        return _(
            "checked %(checked)d recipients: %(errors)d errors, %(warnings)d warnings",
            checked=self.checked,
            errors=self.errors,
            warnings=self.warnings,
        )


def _contacts(audience: Select[Any] | Iterable[Contact]) -> Iterator[Contact]:
    if isinstance(audience, Select):
        # A stable order makes the report comparable between runs.
        query = audience.order_by(Contact.id).execution_options(yield_per=BATCH_SIZE)
        yield from db.session.scalars(query)
    else:
        yield from audience


def check_audience(
    statement: Any,
    contacts: Select[Any] | Iterable[Contact],
    *,
    language: str | None = None,
    today: dt.date | None = None,
    rules: RuleSet | None = None,
    rendered: Mapping[int, RenderedLetter] | None = None,
    officials_share: tuple[int, int] | None = None,
) -> PresendReport:
    """Render the statement for every recipient and report their problems; write nothing.

    `statement` is a Statement (its latest version) or the StatementVersion a campaign
    sends; `contacts` a select of contacts (streamed) or any iterable of them. `language`
    forces one text for everybody (LanguageUnavailable when the statement has no such text).
    `rendered` holds letters already made from this source, by contact id (the live editor's):
    those are read, not made again. `officials_share` (officials, recipients) is the whole
    audience's when `contacts` is only part of it (the preview's one recipient), so the
    role `other` warning is given exactly when the launch page gives it.
    """
    source: LetterSource = letter_source(statement)
    if language and match_language(language, source.languages) is None:
        raise LanguageUnavailable(language, source.languages)
    rule_set = rules or RuleSet.builtin()
    today = today or dt.date.today()
    report = PresendReport(source.statement_id, source.version)
    # Each distinct body of a language is read once (the source parse is cached per text):
    # a statement with 10,000 recipients is not parsed 10,000 times, and a {% if %} that
    # changes the ending for some recipients is read for them too.
    reading = _Reading(rule_set)
    officials = 0
    # Recipients whose role is `other`: (where their problems end in report.problems, id,
    # email, name, letter language, salutation).
    unroled: list[tuple[int, int, str, str, str, str]] = []
    for contact in _contacts(contacts):
        report.checked += 1
        email = str(contact.email or "")
        name = contact.display_name
        text_error = False
        salutation = ""
        try:
            letter = (rendered or {}).get(contact.id) or render_letter(
                source, contact, language=language, today=today, rules=rule_set
            )
            salutation = letter.salutation
            found, letter_language = letter.problems, letter.language
            own, text_error = _reader_problems(source, contact, letter, reading, report)
            found += own
        except Exception as error:  # one broken letter must not stop the check of the others
            log.exception("pre-send check failed for contact %s", contact.id)
            found = (
                LetterProblem(
                    "error",
                    "render_error",
                    said(_l("the letter could not be made: %(reason)s", reason=str(error))),
                ),
            )
            letter_language = ""
        if letter_language:
            report.languages[letter_language] += 1
        for problem in found:
            report.problems.append(
                ContactProblem(contact.id, email, name, letter_language, problem)
            )
            report.codes[problem.code] += 1
        if any(p.severity == "error" for p in found) or text_error:
            report.contacts_with_errors += 1
        role = contact.role_type or RoleType.OTHER.value
        if role in OFFICIAL_ROLES:
            officials += 1
        elif role == RoleType.OTHER.value:
            unroled.append(
                (len(report.problems), contact.id, email, name, letter_language, salutation)
            )
    if officials_share is not None:
        officials, recipients = officials_share
    else:
        recipients = report.checked
    if officials and 2 * officials >= recipients:
        _warn_unroled(report, unroled, officials)
    for letter_language, unread in sorted(reading.unread.items()):
        report.text_problems.append(_not_read(source, letter_language, len(unread)))
        report.codes["letters_not_read"] += 1
    report.text_problems.sort(
        key=lambda p: (p.language, p.problem.severity != "error", p.line, p.problem.code)
    )
    return report


def officials_share(audience: Select[Any]) -> tuple[int, int]:
    """(officials, recipients) of an audience, counted by the database in one query."""
    ids = audience.with_only_columns(Contact.id, Contact.role_type).order_by(None).subquery()
    role = func.coalesce(ids.c.role_type, RoleType.OTHER.value)
    row = db.session.execute(
        select(
            func.count(),
            func.count(case((role.in_([r.value for r in OFFICIAL_ROLES]), 1))),
        ).select_from(ids)
    ).one()
    return int(row[1] or 0), int(row[0] or 0)


def _warn_unroled(
    report: PresendReport, unroled: list[tuple[int, int, str, str, str, str]], officials: int
) -> None:
    """Warn for each recipient whose role is `other` in an audience with `officials`:
    their letter greets them without a title, which an official may take amiss. Each
    warning goes after that recipient's other problems, so the list keeps audience order."""
    merged: list[ContactProblem] = []
    taken = 0
    for end, contact_id, email, name, letter_language, salutation in unroled:
        merged.extend(report.problems[taken:end])
        taken = end
        if salutation:
            message = lazy_ngettext(
                "the contact's role is “other” while %(num)d recipient of this audience is an "
                "official: the letter greets them as “%(salutation)s”; if they hold an office, "
                "set their role on the contact's page",
                "the contact's role is “other” while %(num)d recipients of this audience are "
                "officials: the letter greets them as “%(salutation)s”; if they hold an office, "
                "set their role on the contact's page",
                officials,
                salutation=salutation,
            )
        else:
            message = lazy_ngettext(
                "the contact's role is “other” while %(num)d recipient of this audience is an "
                "official; if they hold an office, set their role on the contact's page",
                "the contact's role is “other” while %(num)d recipients of this audience are "
                "officials; if they hold an office, set their role on the contact's page",
                officials,
            )
        problem = LetterProblem("warning", "role_other", said(message))
        merged.append(ContactProblem(contact_id, email, name, letter_language, problem))
        report.codes["role_other"] += 1
    merged.extend(report.problems[taken:])
    report.problems[:] = merged


def _message(text: Text) -> str:
    """A problem's words now, its message kept for the scheduler's record (stored_text)."""
    return said(text) if isinstance(text, LazyString) else str(text)


@dataclass
class _Reading:
    """What one check has read: the distinct bodies, and the text's problems listed."""

    rules: RuleSet
    bodies: dict[tuple[str, str], bool] = field(default_factory=dict)  # -> has an error
    read: Counter[str] = field(default_factory=Counter)  # bodies read per language
    unread: dict[str, set[str]] = field(default_factory=dict)  # beyond MAX_READINGS
    listed: set[tuple[str, str, str, int, str]] = field(default_factory=set)
    closings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Per language: the paragraphs of the text part and the lines of the HTML part that
    # the first letter printed without any of its recipient's values (the statement's own
    # words), each with its place. A letter is searched only outside them (decision 0071).
    fixed: dict[str, tuple[dict[str, int], dict[str, int]]] = field(default_factory=dict)

    def closings_in(self, language: str) -> tuple[str, ...]:
        """The closings the salutation rules (built-in and admin) know in `language`."""
        if language not in self.closings:
            primary = language.split("-")[0].lower()
            self.closings[language] = tuple(
                text
                for rule in self.rules.rules
                if rule.kind == "closing" and rule.language in {primary, "*"}
                for text in rule.texts
            )
        return self.closings[language]


def _printed_values(
    contact: Contact,
    letter: RenderedLetter,
    rules: RuleSet,
    parts: tuple[str, str, str],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What the recipient's own fields print in `letter` (names, organisation, salutation),
    as typed; and, case-folded, those printed in any case (`|upper`) in its text part.

    `parts` are where to look: (text, its case-folded form, html): the whole letter, or
    only its paragraphs and lines that are not the statement's own words (_fixed_parts).
    """
    person = contact_context(contact, letter.language, rules=rules)
    candidates = [v for v in person.values() if isinstance(v, str)]
    candidates += [letter.salutation, letter.closing, *letter.address_block]
    text, folded_text, html = parts
    typed: list[str] = []
    folded_found: set[str] = set()
    for value in {v.strip() for v in candidates if len(v.strip()) > 2}:
        folded = value.casefold()
        # Not in the text in any case: not in it as typed either (casefold maps each
        # character on its own), so only the HTML part is left to search.
        if folded in folded_text:
            folded_found.add(folded)
            if value in text or value in html:
                typed.append(value)
        elif value in html:
            typed.append(value)
    as_typed = sorted(typed, key=len, reverse=True)
    return tuple(as_typed), tuple(sorted(folded_found, key=len, reverse=True))


_PARAGRAPH = "\n\n"
_LINE = "\n"


def _fixed_parts(
    contact: Contact, letter: RenderedLetter, reading: _Reading
) -> tuple[dict[str, int], dict[str, int]]:
    """The statement's own paragraphs (text part) and lines (HTML part) in the letters of
    `letter`'s language: those of the first letter read that hold none of its recipient's
    values, in any case. Another letter's paragraph equal to one of them prints no value
    of its recipient either (or prints it as the statement's own words)."""
    language = letter.language
    if language not in reading.fixed:
        text, html = letter.text_body, letter.html_body
        whole = (text, text.casefold(), html)
        _typed, folded = _printed_values(contact, letter, reading.rules, whole)

        def own(part: str) -> bool:
            part = part.casefold()
            return not any(value in part for value in folded)

        paragraphs = [p for p in text.split(_PARAGRAPH) if own(p)]
        lines = [line for line in html.split(_LINE) if own(line)]
        reading.fixed[language] = (
            {p: n for n, p in enumerate(paragraphs)},
            {line: n for n, line in enumerate(lines)},
        )
    return reading.fixed[language]


# Every ASCII digit, taken out of the body's key (bytes.translate: one pass in C, where the
# regular expression r"\d+" took a third of the check's own time per letter).
_NO_DIGITS = b"0123456789"


def _shape(
    language: str, skeleton: tuple[int, ...], folded_text: str, values: tuple[str, ...]
) -> tuple[str, str]:
    """A key for the body's shape: which of the statement's own paragraphs it has, in
    which order (`skeleton`, -1 for a paragraph of its own), and its own paragraphs with
    the recipient's values taken out.

    Compared case-folded (`folded_text`, `values`), so a value printed through a filter
    that changes its case (`{{ contact.family_name|upper }}`, `|title`) is taken out too,
    and without its digits (`{{ contact.email|length }}`, a count, a date's day): numbers
    change neither the Markdown, nor the closing, nor the comparison of the parts (which
    leaves them out).
    """
    text = folded_text
    for value in values:  # case-folded, longest first
        text = text.replace(value, "\0")
    data = text.encode("utf-8", "surrogatepass").translate(None, _NO_DIGITS)
    digest = hashlib.sha256(repr(skeleton).encode())
    digest.update(data)
    return language, digest.hexdigest()


def _not_read(source: LetterSource, language: str, count: int) -> TextProblem:
    """The warning for the letters of `language` beyond MAX_READINGS, not read one by one."""
    message = lazy_ngettext(
        "%(num)d letter differs from the %(read)d read in this language by more than the "
        "recipient's names and values and was not read on its own (the check reads at most "
        "%(read)d different letters per language). Its salutation and values were checked; "
        "open a few letters in the preview to see their text",
        "%(num)d letters differ from the %(read)d read in this language by more than the "
        "recipients' names and values and were not read one by one (the check reads at most "
        "%(read)d different letters per language). Their salutations and values were "
        "checked; open a few letters in the preview to see their text",
        count,
        read=MAX_READINGS,
    )
    return TextProblem(
        source.statement_id,
        source.title,
        language,
        NO_LINE,
        LetterProblem("warning", "letters_not_read", _message(message)),
    )


def _reader_problems(
    source: LetterSource,
    contact: Contact,
    letter: RenderedLetter,
    reading: _Reading,
    report: PresendReport,
) -> tuple[tuple[LetterProblem, ...], bool]:
    """Read `letter` as its recipient will: each distinct body once, their own values and
    salutation always.

    Adds the text's problems to `report` when a body is first seen; returns the recipient's
    own problems and whether their body has an error of the text.
    """
    if any(p.code == "render_error" for p in letter.problems):
        return (), False  # reported already; the text is read with a letter that could be made
    language = letter.language
    body = source.text(language)[1]
    fixed_paragraphs, fixed_lines = _fixed_parts(contact, letter, reading)
    paragraphs = letter.text_body.split(_PARAGRAPH)
    skeleton = tuple(fixed_paragraphs.get(p, -1) for p in paragraphs)
    own_text = _PARAGRAPH.join(p for p, n in zip(paragraphs, skeleton, strict=True) if n < 0)
    own_html = _LINE.join(line for line in letter.html_body.split(_LINE) if line not in fixed_lines)
    folded_text = own_text.casefold()
    values, folded_values = _printed_values(
        contact, letter, reading.rules, (own_text, folded_text, own_html)
    )
    key = _shape(language, skeleton, folded_text, folded_values)
    if key not in reading.bodies and reading.read[language] >= MAX_READINGS:
        reading.unread.setdefault(language, set()).add(key[1])
    elif key not in reading.bodies:
        reading.read[language] += 1
        found = check_content(
            LetterContent(
                source=body,
                html=letter.html_body,
                text=letter.text_body,
                subject=letter.subject,
                language=language,
                closing=letter.closing,
                signatory_lines=letter.signatory_lines,
                closings=reading.closings_in(language),
                values=values,
            )
        )
        reading.bodies[key] = any(p.severity == "error" for p in found)
        for problem in found:
            message = _message(problem.message)
            seen = (language, problem.severity, problem.code, problem.line, message)
            if seen in reading.listed:
                continue  # the same problem in another body of the text
            reading.listed.add(seen)
            report.text_problems.append(
                TextProblem(
                    source.statement_id,
                    source.title,
                    language,
                    problem.line,
                    LetterProblem(problem.severity, problem.code, message),
                )
            )
            report.codes[problem.code] += 1
    own: list[ContentProblem] = value_problems(values)
    if not any(p.code == "no_salutation_rule" for p in letter.problems):
        # (a missing rule is the problem, said already)
        salutation = salutation_problem(
            body,
            letter.html_body,
            letter.salutation,
            language,
            uses_salutation="salutation" in source.variables(language),
        )
        if salutation is not None:
            own.append(salutation)
    return tuple(_located(source, language, p) for p in own), reading.bodies.get(key, False)


def _located(source: LetterSource, language: str, problem: ContentProblem) -> LetterProblem:
    """A recipient's content problem, its message naming the statement, language and line."""
    place = _where(source.statement_id, source.title, language, problem.line)
    return LetterProblem(
        problem.severity,
        problem.code,
        said(_l("%(where)s: %(message)s", where=place, message=problem.message)),
    )


def problem_lines(report: PresendReport, *, errors_only: bool = False) -> list[LazyString]:
    """The report in words, one problem a line ("place — Problem: message"), the text's
    problems first, read in the reader's language (the CLI prints them; the scheduler
    keeps the first ones as the reason a launch did not go)."""
    lines: list[LazyString] = []
    for text_problem in report.text_problems:
        if not errors_only or text_problem.problem.severity == "error":
            place = _where(
                text_problem.statement_id,
                text_problem.title,
                text_problem.language,
                text_problem.line,
            )
            lines.append(_line(place, text_problem.problem))
    for item in report.problems:
        if not errors_only or item.problem.severity == "error":
            lines.append(_line(item.who, item.problem))
    return lines


def _line(place: Text, problem: LetterProblem) -> LazyString:
    return _l(
        "%(where)s — %(problem)s: %(message)s",
        where=place,
        problem=labelled(problem.code, "problem"),
        message=problem.message,
    )


# --- the installation's addresses, checked before a launch --------------------------------


def launch_address_problems(
    from_address: str, *, settings: dict[str, Any], links_here: bool
) -> list[LazyString]:
    """What makes letters from `from_address` unfit for the internet, in words.

    A sender or Message-ID domain of localhost (or without a dot); and, when the letters
    link back to this app (`links_here`: the unsubscribe header, tracking), a public address
    that is missing, not https:// (RFC 8058 one-click needs HTTPS) or that recipients
    cannot reach. Launches refuse them outside debug; `campaign dev` shows them as warnings.
    """
    problems: list[LazyString] = []
    sender_domain = from_address.rpartition("@")[2].strip(" >").lower()
    if not _internet_domain(sender_domain):
        problems.append(
            _l(
                "From: the sender's domain (%(domain)s) is not a domain on the internet; "
                "recipients' providers would refuse the letters or file them as spam. Use an "
                "address at your organisation's domain",
                domain=sender_domain or "-",
            )
        )
    configured = str(settings.get("MESSAGE_ID_DOMAIN") or "").strip()
    if configured and not _internet_domain(configured.lower()):
        problems.append(
            _l(
                "Message-ID: CAMPAIGN_MESSAGE_ID_DOMAIN (%(domain)s) is not a domain on the "
                "internet; set it to your organisation's domain or leave it empty to use the "
                "sender's",
                domain=message_id_domain(from_address, settings),
            )
        )
    if links_here:
        problem = public_url_problem(str(settings.get("PUBLIC_URL") or ""))
        if problem is not None:
            problems.append(problem)
    return problems


def this_machines_problems(campaign: Any) -> list[LazyString]:
    """launch_address_problems for `campaign` under this process's own settings; none in debug.

    The launch checked the web app's settings, but a worker builds the letters (their
    List-Unsubscribe, Message-IDs) from its own: a worker machine without CAMPAIGN_PUBLIC_URL
    would send unsubscribe links to http://127.0.0.1:5000.
    """
    if current_app.debug:
        return []
    return launch_address_problems(
        campaign.from_address,
        settings=dict(current_app.config),
        links_here=bool(
            campaign.has_list_unsubscribe or campaign.is_open_tracking or campaign.is_click_tracking
        ),
    )


def worker_pause_reason(campaign: Any) -> LazyString | None:
    """Why this worker must pause `campaign` before sending anything (None: it may send)."""
    problems = this_machines_problems(campaign)
    if not problems:
        return None
    return _l(
        "paused before sending: this worker's settings would make letters the internet "
        "cannot use (%(problems)s); set them on the worker's machine as on the web app's, "
        "restart the worker, then resume",
        problems=joined("; ", list(problems)),
    )


def public_url_problem(public_url: str) -> LazyString | None:
    """Why recipients could not follow a link to `public_url` (None when they can)."""
    url = public_url.strip()
    if not url:
        return _l(
            "Unsubscribe: CAMPAIGN_PUBLIC_URL is not set, so the unsubscribe links in "
            "the letters would point at this machine's development address; set it to "
            "this app's public https:// address"
        )
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        return _l(
            "Unsubscribe: CAMPAIGN_PUBLIC_URL (%(url)s) must start with https://: one-click "
            "unsubscribe (RFC 8058) needs an address recipients' providers reach over HTTPS",
            url=url,
        )
    host = (parts.hostname or "").lower()
    if not host:
        return _l("Unsubscribe: CAMPAIGN_PUBLIC_URL (%(url)s) names no host", url=url)
    try:
        parts.port  # noqa: B018 (raises on a port that is not 0-65535)
    except ValueError:
        return _l("Unsubscribe: CAMPAIGN_PUBLIC_URL (%(url)s) has no valid port", url=url)
    if not _reachable_host(host):
        return _l(
            "Unsubscribe: CAMPAIGN_PUBLIC_URL (%(url)s) points at this machine or a private "
            "network (%(host)s), which recipients cannot reach; set it to this app's public "
            "https:// address",
            url=url,
            host=host,
        )
    return None


# Names that only a local network resolves, or that never resolve (RFC 6761, 6762, 8375 and
# ICANN's .internal): letters from or links to them cannot work on the internet. The
# documentation names (.example, example.org/.com/.net) stay allowed: the demo and the
# tests use them, and they are registered domains nobody mistakes for their own.
_LOCAL_SUFFIXES = (
    "localhost",
    "localdomain",
    "local",
    "internal",
    "lan",
    "home.arpa",
    "intranet",
    "corp",
    "private",
    "test",
    "invalid",
)


def _internet_domain(domain: str) -> bool:
    """Whether `domain` (of an address, of Message-IDs) is a name on the internet: not an
    address literal in any spelling, not a local name, not a single label."""
    domain = domain.strip().rstrip(".").lower()
    if not domain or domain.startswith("["):  # user@[192.0.2.1]
        return False
    if _ip_address(domain) is not None:
        return False  # user@127.0.0.1: mail servers take domains, not bare addresses
    if any(domain == suffix or domain.endswith("." + suffix) for suffix in _LOCAL_SUFFIXES):
        return False
    return "." in domain


def _ip_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`host` read as an address the way resolvers and browsers read it (None if it is a
    name): 127.1, 0x7f.0.0.1 and 2130706433 are all 127.0.0.1."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if not all(c in "0123456789abcdefxABCDEFX." for c in host):
        return None  # inet_aton reads only digits, hex and dots; a name has other letters
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _reachable_host(host: str) -> bool:
    address = _ip_address(host)
    if address is None:
        return _internet_domain(host)
    return address.is_global
