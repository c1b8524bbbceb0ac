"""Previews: recipients of an audience found by search, their neighbours, one recipient's
pre-send warnings, the campaign whose cases a preview merges, and a draft text rendered as
its reader will see it (the live editor).

Nothing here writes to the database; the live letter is kept a few minutes in Redis for the
page's frame to fetch, and its renders are counted per user there.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from babel import Locale
from flask_babel import format_number, get_locale
from flask_babel import gettext as _
from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, Select, String, and_, exists, literal, or_, select, tuple_

from campaign.extensions import db
from campaign.labels import choices
from campaign.letters.letter import LanguageUnavailable, LetterSource
from campaign.letters.types import LetterProblem
from campaign.models import Campaign, CampaignStep, Contact, Statement, campaign_cases
from campaign.models.search_key import fold
from campaign.params import row_id
from campaign.queue import get_redis
from campaign.rate_limit import count_in_window
from campaign.services.contacts.segments import escape_like
from campaign.services.sending.campaigns import CampaignError, recipients_query
from campaign.services.statements.complete_letters import compose_letter
from campaign.services.statements.presend import check_audience, officials_share
from campaign.services.statements.salutation_rules import current_rule_set
from campaign.services.statements.statements import letter_source

# A search never lists more than this many recipients; the page says when there are more.
MAX_RESULTS = 50
MAX_QUERY = 200
# The live editor: renders per user per minute, the text's size, how long a render is kept.
DRAFT_RENDERS_PER_MINUTE = 120
# Markdown and the content checks are not bounded by the sandbox's 2 s (that is Jinja's):
# a pathological text of this size still takes ~4 s (decision 0049), four times less than
# the sandbox's own source limit would.
DRAFT_MAX_CHARS = 50_000
DRAFT_TTL_SECONDS = 600
# One render in flight per user: held at most this long (a killed process's lock expires).
DRAFT_BUSY_SECONDS = 30
# How long the page waits before trying again when a render of the user's is running.
DRAFT_BUSY_RETRY = 1
_DRAFT_PREFIX = "campaign:draft-letter"
_PANE_PREFIX = "campaign:draft-pane"
_BUSY_PREFIX = "campaign:draft-busy"
_RATE_PREFIX = "campaign:draft-renders"
_PANE = re.compile(r"[a-z][a-z-]{0,39}")
# Deletes the user's in-flight mark only if it is still this render's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_ORDER = (Contact.family_name, Contact.given_name, Contact.id)


class DraftRefused(ValueError):
    """A draft was not rendered; the message says why, in words; `status` is the HTTP one
    (422 the text, 429 too many renders or one still running, 503 Redis unreachable);
    `retry` the seconds after which the same request may succeed (429 only)."""

    def __init__(self, message: str, status: int = 422, retry: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry = retry


# --- recipients ------------------------------------------------------------------------------


# A role or language is found by a word of its name only from this many letters on.
_MIN_NAME_PREFIX = 3


def _starts_a_word(folded: str, name: str) -> bool:
    """Whether `folded` (a folded search word) starts a word of `name` ("jour" of
    "Journalist", never "ali" of it), with at least _MIN_NAME_PREFIX characters."""
    if len(folded) < _MIN_NAME_PREFIX:
        return False
    return any(word.startswith(folded) for word in re.split(r"[\W_]+", fold(name)))


def _language_codes(word: str) -> list[str]:
    """Language tags one of whose name's words (in the interface language) starts with
    `word`, or whose tag is `word`."""
    folded = fold(word)
    if not folded:
        return []
    interface = get_locale() or Locale.parse("en")
    found = {code for code, name in interface.languages.items() if _starts_a_word(folded, name)}
    if word.isalpha() and len(word) in (2, 3):
        found.add(word.lower())
    return sorted(code.replace("_", "-") for code in found)[:20]


def _has_language(code: str) -> ColumnElement[bool]:
    padded = literal(" ", String) + Contact.languages + literal(" ", String)
    escaped = escape_like(code)
    return or_(
        padded.like(f"% {escaped} %", escape="\\"), padded.like(f"% {escaped}-%", escape="\\")
    )


def _word_clause(word: str) -> ColumnElement[bool] | None:
    """One word of a search: in a name or organisation (any script), or starting a word of a
    role's label or a language's name."""
    folded = fold(word)
    if not folded:
        return None
    clauses: list[ColumnElement[bool]] = [
        Contact.search_key.like(f"%{escape_like(folded)}%", escape="\\")
    ]
    roles = [
        value for value, text in choices("role_type") if _starts_a_word(folded, f"{text} {value}")
    ]
    if roles:
        clauses.append(Contact.role_type.in_(roles))
    clauses += [_has_language(code) for code in _language_codes(word)]
    return or_(*clauses)


def _searched(query: Select[Any], q: str) -> Select[Any]:
    words = [c for c in (_word_clause(w) for w in q.split()[:10]) if c is not None]
    query = query.where(Contact.deleted_at.is_(None))
    return query.where(and_(*words)) if words else query


def clean_query(raw: str | None) -> str:
    """The search as typed, spaces tidied and its length bounded."""
    return " ".join(str(raw or "").split())[:MAX_QUERY]


@dataclass(frozen=True)
class RecipientPage:
    """The recipients a search shows (at most MAX_RESULTS) and whether there are more."""

    contacts: list[Contact]
    has_more: bool


def search_recipients(audience: Select[Any], q: str = "") -> RecipientPage:
    """The audience's contacts matching `q` by name, organisation, role or language."""
    query = _searched(audience, clean_query(q)).order_by(*_ORDER).limit(MAX_RESULTS + 1)
    found = list(db.session.scalars(query))
    return RecipientPage(found[:MAX_RESULTS], len(found) > MAX_RESULTS)


def neighbours(
    audience: Select[Any], contact: Contact, q: str = ""
) -> tuple[Contact | None, Contact | None]:
    """The recipients before and after `contact` in the (searched) audience, by name."""
    query = _searched(audience, clean_query(q))
    key = tuple_(*_ORDER)
    here = tuple_(
        literal(contact.family_name or ""), literal(contact.given_name or ""), literal(contact.id)
    )
    before = db.session.scalars(
        query.where(key < here).order_by(*(c.desc() for c in _ORDER)).limit(1)
    ).first()
    after = db.session.scalars(query.where(key > here).order_by(*_ORDER).limit(1)).first()
    return before, after


# The "Cases from campaign" chooser's value for "no campaign: merge no cases".
NO_CASES = "none"


def campaigns_using(statement: Statement) -> list[tuple[Campaign, bool]]:
    """Campaigns whose first letter or a follow-up is this statement, newest first, each
    with whether it has linked cases."""
    has_cases = exists().where(campaign_cases.c.campaign_id == Campaign.id)
    in_step = exists().where(
        CampaignStep.campaign_id == Campaign.id, CampaignStep.statement_id == statement.id
    )
    query = (
        select(Campaign, has_cases)
        .where(or_(Campaign.statement_id == statement.id, in_step))
        .order_by(Campaign.created_at.desc(), Campaign.id.desc())
    )
    return [(campaign, bool(linked)) for campaign, linked in db.session.execute(query)]


def cases_campaign(
    statement: Statement, raw: str | None, using: list[tuple[Campaign, bool]] | None = None
) -> Campaign | None:
    """The campaign whose cases the preview merges: the chosen one (if it uses the statement),
    none when "none" is chosen, else the most recent one with linked cases."""
    using = campaigns_using(statement) if using is None else using
    if raw == NO_CASES:
        return None
    chosen = row_id(raw)
    if chosen is not None:
        return next((campaign for campaign, _linked in using if campaign.id == chosen), None)
    return next((campaign for campaign, linked in using if linked), None)


def campaign_audience(campaign: Campaign) -> Select[Any]:
    """Who a campaign writes to now (its audience minus suppressions), read at each call."""
    try:
        return recipients_query(campaign)
    except CampaignError:  # a list or segment of it was deleted
        return select(Contact).where(Contact.id.is_(None))


def recipient_warnings(
    statement: Any,
    contact: Contact,
    *,
    language: str | None = None,
    audience: Select[Any] | None = None,
) -> list[tuple[str, LetterProblem]]:
    """The pre-send check's problems for one recipient's letter, each with where it is.

    The same check as a campaign's (services/presend), over this one contact; the warnings
    that depend on the whole audience (role `other` among officials) count `audience`.
    """
    report = check_audience(
        statement,
        [contact],
        language=language,
        rules=current_rule_set(),
        officials_share=officials_share(audience) if audience is not None else None,
    )
    found = [(problem.where, problem.problem) for problem in report.text_problems]
    found += [("", problem.problem) for problem in report.problems]
    return found


# --- the live editor ---------------------------------------------------------------------------


def sample_recipients(statement: Any, limit: int = MAX_RESULTS) -> list[Contact]:
    """Contacts offered as the editor's sample reader: the audience of the newest campaign
    that sends this statement, else any contacts, by name."""
    newest = db.session.scalars(
        select(Campaign)
        .where(Campaign.statement_id == statement.id)
        .order_by(Campaign.created_at.desc(), Campaign.id.desc())
        .limit(1)
    ).first()
    query = campaign_audience(newest) if newest is not None else select(Contact)
    found = list(db.session.scalars(_searched(query, "").order_by(*_ORDER).limit(limit)))
    if not found and newest is not None:
        found = list(
            db.session.scalars(_searched(select(Contact), "").order_by(*_ORDER).limit(limit))
        )
    return found


def draft_source(statement: Any, language: str, subject: str, body: str) -> LetterSource:
    """The statement as it would be with `language`'s text replaced by the draft."""
    if len(body) + len(subject) > DRAFT_MAX_CHARS:
        raise DraftRefused(
            _(
                "The text is too long to show: at most %(limit)s characters.",
                limit=format_number(DRAFT_MAX_CHARS),
            )
        )
    source = letter_source(statement)
    snapshot = dict(source.snapshot)
    texts = dict(snapshot.get("texts") or {})
    texts[language] = {**dict(texts.get(language) or {}), "subject": subject, "body": body}
    snapshot["texts"] = texts
    languages = [str(lang) for lang in snapshot.get("languages") or texts]
    if language not in languages:
        languages.append(language)
    snapshot["languages"] = languages
    return LetterSource(source.statement_id, source.version, snapshot)


@dataclass(frozen=True)
class DraftLetter:
    """A draft rendered for a sample reader: the key of its HTML part, its text, problems."""

    key: str
    text: str
    # The pre-send check's problems for this reader's letter, as a campaign's check finds them.
    warnings: Sequence[tuple[str, LetterProblem]]


def allow_draft_render(user_id: int) -> None:
    """Count one live render for the user; DraftRefused when they rendered too many."""
    try:
        full, wait = count_in_window(
            get_redis(), [f"{_RATE_PREFIX}:{user_id}"], [DRAFT_RENDERS_PER_MINUTE], 60
        )
    except RedisError as error:
        raise _unreachable(error) from None
    if full:
        raise DraftRefused(
            _("Too many updates of the letter; it is shown again in %(seconds)d s.", seconds=wait),
            429,
            max(1, wait),
        )


def busy_key(user_id: int) -> str:
    """The Redis key marking that a live render of the user's is running."""
    return f"{_BUSY_PREFIX}:{user_id}"


def _unreachable(error: RedisError) -> DraftRefused:
    return DraftRefused(
        _("The letter cannot be shown just now: %(reason)s", reason=str(error)), 503
    )


def clean_pane(raw: str | None) -> str:
    """Which of the page's panes asks (each keeps its own latest letter)."""
    raw = str(raw or "")
    return raw if _PANE.fullmatch(raw) else "pane"


def render_draft(
    statement: Any,
    contact: Contact,
    *,
    language: str,
    subject: str,
    body: str,
    user_id: int,
    pane: str = "pane",
) -> DraftLetter:
    """Render the draft for `contact` as letters are rendered, check it as the pre-send check
    does, and keep its HTML part for the pane's frame (DRAFT_TTL_SECONDS).

    One render per user at a time (another tab or a slow text makes the next wait, 429):
    a user cannot keep several workers busy with texts that take seconds to read."""
    source = draft_source(statement, language, subject, body)
    token = secrets.token_urlsafe(12)
    try:
        if not get_redis().set(busy_key(user_id), token, nx=True, ex=DRAFT_BUSY_SECONDS):
            raise DraftRefused(
                _("Still drawing the previous letter; this one follows in a moment."),
                429,
                DRAFT_BUSY_RETRY,
            )
    except RedisError as error:
        raise _unreachable(error) from None
    try:
        return _render_draft(source, contact, language=language, user_id=user_id, pane=pane)
    finally:
        with contextlib.suppress(RedisError):  # else it expires by itself
            get_redis().eval(_RELEASE, 1, busy_key(user_id), token)


def _render_draft(
    source: LetterSource, contact: Contact, *, language: str, user_id: int, pane: str
) -> DraftLetter:
    rules = current_rule_set()
    try:
        # No PDF: it takes a second and the frame shows the HTML part.
        composed = compose_letter(source, contact, language=language, attach_pdf=False, rules=rules)
    except LanguageUnavailable as error:
        raise DraftRefused(str(error)) from None
    key = secrets.token_urlsafe(12)
    _keep(user_id, source.statement_id, pane, key, composed.parts.html)
    if any(p.code == "render_error" for p in composed.letter.problems):
        # The check would only make the same letter again (up to the sandbox's limits).
        warnings: list[tuple[str, LetterProblem]] = [
            ("", problem) for problem in composed.letter.problems
        ]
    else:
        # The pre-send check reads the letter just made rather than making it again.
        report = check_audience(
            source,
            [contact],
            language=language,
            rules=rules,
            rendered={contact.id: composed.letter},
        )
        warnings = [(problem.where, problem.problem) for problem in report.text_problems]
        warnings += [("", problem.problem) for problem in report.problems]
    return DraftLetter(key, composed.parts.text, warnings)


def _draft_key(user_id: int, statement_id: int, key: str) -> str:
    return f"{_DRAFT_PREFIX}:{user_id}:{statement_id}:{key}"


def _keep(user_id: int, statement_id: int, pane: str, key: str, html: str) -> None:
    """Keep a render's HTML part under its own key; the pane's previous one is dropped, so
    that typing costs no memory and each pane's frame shows that pane's letter."""
    redis = get_redis()
    pointer = f"{_PANE_PREFIX}:{user_id}:{statement_id}:{pane}"
    try:
        redis.set(_draft_key(user_id, statement_id, key), html, ex=DRAFT_TTL_SECONDS)
        previous = redis.set(pointer, key, ex=DRAFT_TTL_SECONDS, get=True)
        if isinstance(previous, bytes):
            redis.delete(_draft_key(user_id, statement_id, previous.decode()))
    except RedisError as error:
        raise _unreachable(error) from None


def stored_draft(user_id: int, statement_id: int, key: str) -> str | None:
    """The HTML part of the user's render `key` of the statement (kept a few minutes, until
    the same pane renders again)."""
    if not key or len(key) > 40:
        return None
    try:
        raw = get_redis().get(_draft_key(user_id, statement_id, key))
    except RedisError:
        return None
    return raw.decode() if isinstance(raw, bytes) else None
