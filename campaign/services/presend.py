"""The pre-send check: render a statement for every recipient and report what is wrong.

Nothing is written: the check reads the audience in batches (yield_per) and keeps only the
problems, so it runs over thousands of contacts in little memory.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import Select

from campaign.extensions import db
from campaign.letters.letter import (
    LanguageUnavailable,
    LetterSource,
    letter_source,
    match_language,
    render_letter,
)
from campaign.letters.salutations import RuleSet
from campaign.letters.types import LetterProblem
from campaign.models import Contact

log = logging.getLogger(__name__)
BATCH_SIZE = 500


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


@dataclass
class PresendReport:
    """What the check found over an audience: per-contact problems and a summary."""

    statement_id: int
    statement_version: int
    checked: int = 0
    problems: list[ContactProblem] = field(default_factory=list)
    # Recipients per letter language.
    languages: Counter[str] = field(default_factory=Counter)
    # Problems per code ("no_email": 3).
    codes: Counter[str] = field(default_factory=Counter)
    contacts_with_errors: int = 0

    @property
    def errors(self) -> int:
        return sum(1 for p in self.problems if p.problem.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for p in self.problems if p.problem.severity != "error")

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
) -> PresendReport:
    """Render the statement for every recipient and report their problems; write nothing.

    `statement` is a Statement (its latest version) or the StatementVersion a campaign
    sends; `contacts` a select of contacts (streamed) or any iterable of them. `language`
    forces one text for everybody (LanguageUnavailable when the statement has no such text).
    """
    source: LetterSource = letter_source(statement)
    if language and match_language(language, source.languages) is None:
        raise LanguageUnavailable(language, source.languages)
    rule_set = rules or RuleSet.builtin()
    today = today or dt.date.today()
    report = PresendReport(source.statement_id, source.version)
    for contact in _contacts(contacts):
        report.checked += 1
        email = str(contact.email or "")
        name = contact.display_name
        try:
            letter = render_letter(source, contact, language=language, today=today, rules=rule_set)
            found, letter_language = letter.problems, letter.language
        except Exception as error:  # one broken letter must not stop the check of the others
            log.exception("pre-send check failed for contact %s", contact.id)
            found = (
                LetterProblem(
                    "error",
                    "render_error",
                    _("the letter could not be made: %(reason)s", reason=str(error)),
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
        if any(p.severity == "error" for p in found):
            report.contacts_with_errors += 1
    return report
