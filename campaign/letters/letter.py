"""One statement version merged for one contact: language, salutation, subject, body, problems.

Everything is rendered from a version's snapshot (plain data), never from live rows, so a
campaign re-renders exactly the text it sent. The template only ever sees plain data.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from flask_babel.speaklater import LazyString
from jinja2 import TemplateError
from jinja2.meta import find_undeclared_variables

from campaign.i18n import joined, said
from campaign.i18n import lazy_language_names as _language
from campaign.letters.address import (
    address_lines,
    country_name,
    full_name,
    letter_names,
    localised,
)
from campaign.letters.countries import load_country_names
from campaign.letters.markdown import render_body
from campaign.letters.protocol_checks import protocol_problems
from campaign.letters.salutations import (
    MissingRuleError,
    Resolution,
    RuleSet,
    UnsupportedLanguageError,
    names_remembered,
    primary_language,
)
from campaign.letters.sandbox import (
    RenderError,
    TemplateRefused,
    get_environment,
    plain_context,
    render,
)
from campaign.letters.signatories import SignatoryBlock, signatory_block
from campaign.letters.types import LetterProblem, RenderedLetter

UN_ROLES = frozenset({"un_sr", "un_wg"})
# The working languages of the UN special procedures' secretariat.
UN_LANGUAGES = frozenset({"en", "fr", "es"})
MAX_SUBJECT = 998
# Anything that ends a header line or hides one: C0 controls except tab, DEL, NEL, U+2028/9.
_HEADER_BREAK = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
# Contact fields that go into headers (To, Cc) or the address block.
_HEADER_FIELDS = (
    ("email", _l("email address")),
    ("cc_emails", _l("copy addresses")),
    ("given_name", _l("given name")),
    ("family_name", _l("family name")),
    ("patronymic", _l("patronymic")),
    ("given_name_alt", _l("given name (other script)")),
    ("family_name_alt", _l("family name (other script)")),
    ("patronymic_alt", _l("patronymic (other script)")),
    ("honorific", _l("honorific")),
    ("position_title", _l("position title")),
    ("organisation", _l("organisation")),
    ("country", _l("country")),
)
_NAME_PART_WORDS = {
    "given": _l("given name"),
    "family": _l("family name"),
    "patronymic": _l("patronymic"),
}


class LanguageUnavailable(LookupError):
    """A language was asked for that the statement has no text in."""

    def __init__(self, language: str, available: Sequence[str]) -> None:
        self.language = language
        self.available = tuple(available)
        super().__init__(
            _(
                "the statement has no text in %(language)s; it has: %(available)s",
                language=repr(language),
                available=", ".join(available) or _("none"),
            )
        )


# --- The statement, as plain data -------------------------------------------------------


@dataclass
class LetterSource:
    """A statement version's snapshot, with what every letter from it shares (per language)."""

    statement_id: int
    version: int
    snapshot: Mapping[str, Any]
    _blocks: dict[str, SignatoryBlock] = field(default_factory=dict, repr=False)
    _variables: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)

    @property
    def title(self) -> str:
        return str(self.snapshot.get("title", ""))

    @property
    def languages(self) -> list[str]:
        texts = self.snapshot.get("texts") or {}
        listed = [str(lang) for lang in self.snapshot.get("languages") or () if lang in texts]
        return listed or [str(lang) for lang in texts]

    def text(self, language: str) -> tuple[str, str]:
        entry = (self.snapshot.get("texts") or {})[language]
        return str(entry.get("subject", "")), str(entry.get("body", ""))

    def signatories(self, language: str) -> SignatoryBlock:
        if language not in self._blocks:
            self._blocks[language] = signatory_block(
                self.snapshot.get("signatories") or (), language
            )
        return self._blocks[language]

    def variables(self, language: str) -> frozenset[str]:
        """The names the language's subject and body use (to know if a salutation is needed)."""
        if language not in self._variables:
            subject, body = self.text(language)
            self._variables[language] = _template_variables(subject) | _template_variables(body)
        return self._variables[language]


# Every letter of a campaign asks this of the same few texts; parsing them once is enough.
@lru_cache(maxsize=256)
def _template_variables(source: str) -> frozenset[str]:
    try:
        return frozenset(find_undeclared_variables(get_environment("text").parse(source)))
    except (TemplateError, TemplateRefused):
        return frozenset({"salutation", "closing"})  # reported when it is rendered


def letter_source(statement: Any) -> LetterSource:
    """Return the LetterSource of a StatementVersion (or the LetterSource given).

    A Statement is not read here: which version is its latest, and what a statement not
    yet frozen looks like as a snapshot, are the statements service's to say
    (`services.statements.statements.letter_source`, which hands the result here).
    """
    from campaign.models import StatementVersion

    if isinstance(statement, LetterSource):
        return statement
    if isinstance(statement, StatementVersion):
        return LetterSource(statement.statement_id, statement.number, statement.snapshot)
    raise TypeError(f"cannot make letters from a {type(statement).__name__}")


# --- Language ---------------------------------------------------------------------------


def _subtags(tag: str) -> tuple[str, str]:
    parts = re.split(r"[-_]", tag.strip().lower())
    script = next((p for p in parts[1:] if len(p) == 4 and p.isalpha()), "")
    return parts[0], script


def match_language(wanted: str, available: Sequence[str]) -> str | None:
    """Return the statement language that serves a reader of `wanted`, or None.

    The exact tag first (ignoring case); then any text in the same primary language whose
    script does not differ ("fr" reads "fr-BE" and "fr-BE" reads "fr"; "sr-Latn" does not
    read "sr-Cyrl"), the bare language first, then the statement's order.
    """
    if not wanted.strip():
        return None
    for tag in available:
        if tag.lower() == wanted.strip().lower().replace("_", "-"):
            return tag
    language, script = _subtags(wanted)
    candidates = [
        tag
        for tag in available
        if _subtags(tag)[0] == language and (not script or _subtags(tag)[1] in ("", script))
    ]
    bare = [tag for tag in candidates if "-" not in tag and "_" not in tag]
    ranked = bare or candidates
    return ranked[0] if ranked else None


def choose_language(
    contact_languages: Sequence[str], statement_languages: Sequence[str]
) -> tuple[str, LetterProblem | None]:
    """Return the first of the contact's languages the statement has, else its first language.

    The fallback comes with a "language_fallback" warning for the pre-send check.
    """
    if not statement_languages:
        raise ValueError("the statement has no text in any language")
    for wanted in contact_languages:
        found = match_language(wanted, statement_languages)
        if found is not None:
            return found, None
    fallback = statement_languages[0]
    if contact_languages:
        reason = _l(
            "the statement has none of the contact's languages (%(languages)s); the letter "
            "goes out in the statement's first language (%(fallback)s)",
            languages=_language(*contact_languages),
            fallback=_language(fallback),
        )
    else:
        reason = _l(
            "the contact has no language; the letter goes out in the statement's first "
            "language (%(fallback)s)",
            fallback=_language(fallback),
        )
    return fallback, LetterProblem("warning", "language_fallback", said(reason))


def un_language_problem(role_type: str, language: str) -> LetterProblem | None:
    """Flag a letter to a UN special procedure in a language other than English, French, Spanish."""
    if role_type in UN_ROLES and primary_language(language) not in UN_LANGUAGES:
        return LetterProblem(
            "warning",
            "un_language",
            said(
                _l(
                    "the letter to a UN special procedure is in %(language)s, but the mandates "
                    "work in English, French and Spanish; add a text in one of them",
                    language=_language(language),
                )
            ),
        )
    return None


# --- The contact, as plain data ---------------------------------------------------------


def _field(contact: object, name: str) -> str:
    value = getattr(contact, name, "")
    return "" if value is None else str(value)


def contact_languages(contact: object) -> list[str]:
    return _field(contact, "languages").split()


def contact_context(
    contact: object, language: str = "en", *, rules: RuleSet | None = None
) -> dict[str, Any]:
    """Return the contact as the plain dict templates see (`contact.…`).

    Names are in the letter's script, chosen as the salutations choose them. Internal
    fields (notes, tags, risk level, consent) are not there: letters cannot print them.
    """
    names = letter_names(contact, language, rules)
    country = _field(contact, "country").strip()
    location = _field(contact, "location_country").strip()
    countries = load_country_names()
    return {
        "kind": _field(contact, "kind"),
        "given_name": names["given"],
        "family_name": names["family"],
        "patronymic": names["patronymic"],
        "full_name": full_name(names, language),
        "honorific": _field(contact, "honorific"),
        "position_title": localised(contact, "position_title", language),
        "organisation": localised(contact, "organisation", language),
        "country": country,
        "country_name": country_name(country, language, countries),
        "country_formal_name": countries.formal(country, language) if country else "",
        "location_country": location,
        "location_country_name": country_name(location, language, countries),
        "email": _field(contact, "email"),
        "role_type": _field(contact, "role_type"),
        "grammatical_gender": _field(contact, "grammatical_gender"),
        "style": _field(contact, "style"),
        "languages": contact_languages(contact),
    }


# --- Problems found on the contact ------------------------------------------------------


def header_problems(contact: object) -> list[LetterProblem]:
    """A line break or control character in a value that becomes a header or address line."""
    bad = [label for name, label in _HEADER_FIELDS if _HEADER_BREAK.search(_field(contact, name))]
    if not bad:
        return []
    return [
        LetterProblem(
            "error",
            "header_injection",
            said(
                lazy_ngettext(
                    "the contact's %(fields)s contains a line break or control character; "
                    "correct the contact before sending",
                    "the contact's %(fields)s contain a line break or control character; "
                    "correct the contact before sending",
                    len(bad),
                    fields=joined(", ", bad),
                )
            ),
        )
    ]


def address_problems(contact: object) -> list[LetterProblem]:
    """Addresses the message could not carry (caught here, before anything is queued)."""
    from campaign.mail import MessageError, encode_address

    problems = []
    addresses = [("email", _field(contact, "email"))]
    addresses += [("secretariat / copy address", a) for a in _field(contact, "cc_emails").split()]
    for label, address in addresses:
        if not address.strip():
            continue
        try:
            encode_address(address, field=label)
        except MessageError as error:  # AddressError included
            problems.append(LetterProblem("error", "bad_address", str(error)))
    return problems


def _describe_fallback(kind: str, contact: object, resolution: Resolution) -> LetterProblem:
    from campaign.labels import label

    parts: list[str | LazyString] = [_NAME_PART_WORDS.get(p, p) for p in sorted(resolution.missing)]
    missing = parts[0]
    if len(parts) > 1:
        missing = _l("%(first)s and %(second)s", first=joined(", ", parts[:-1]), second=parts[-1])
    role = LazyString(label, _field(contact, "role_type") or "other", "role_type")
    gender = LazyString(label, _field(contact, "grammatical_gender") or "unknown", "gender")
    if kind == "closing":
        message = _l(
            "the closing rule for %(role)s (%(gender)s; letter language: %(language)s) needs "
            "the %(missing)s, which is empty; the letter says “%(text)s” instead",
            role=role,
            gender=gender,
            language=_language(resolution.language),
            missing=missing,
            text=resolution.text,
        )
    else:
        message = _l(
            "the salutation rule for %(role)s (%(gender)s; letter language: %(language)s) "
            "needs the %(missing)s, which is empty; the letter says “%(text)s” instead",
            role=role,
            gender=gender,
            language=_language(resolution.language),
            missing=missing,
            text=resolution.text,
        )
    return LetterProblem("warning", "missing_name_part", said(message))


def _salutation_and_closing(
    contact: object, language: str, rules: RuleSet, needed: bool
) -> tuple[str, str, list[LetterProblem]]:
    problems: list[LetterProblem] = []
    texts: list[str] = []
    for kind in ("salutation", "closing"):
        try:
            resolution = rules.explain(contact, language, kind=kind)
        except (UnsupportedLanguageError, MissingRuleError) as error:
            if needed:
                if kind == "closing":
                    message = _l(
                        "no closing for this contact in the letter's language, %(language)s "
                        "(%(reason)s); add a rule on the salutations page or write the text "
                        "without {{ salutation }} and {{ closing }}",
                        language=_language(language),
                        reason=str(error),
                    )
                else:
                    message = _l(
                        "no salutation for this contact in the letter's language, %(language)s "
                        "(%(reason)s); add a rule on the salutations page or write the text "
                        "without {{ salutation }} and {{ closing }}",
                        language=_language(language),
                        reason=str(error),
                    )
                problems.append(LetterProblem("error", "no_salutation_rule", said(message)))
            texts.append("")
            continue
        if resolution.fell_through and needed:
            problem = _describe_fallback(kind, contact, resolution)
            if problem not in problems:
                problems.append(problem)
        texts.append(resolution.text)
    override = _field(contact, "salutation_override").strip()
    first_language = (contact_languages(contact) or [""])[0]
    if needed and override and primary_language(first_language) != primary_language(language):
        # The override is one text in one language; in a letter in another language it
        # may read wrong ("Veuillez agréer, Your Excellency, …"): say so, do not guess.
        problems.append(
            LetterProblem(
                "warning",
                "salutation_override_language",
                said(
                    _l(
                        "the contact's own salutation “%(text)s” is used as written, but the "
                        "letter is in %(language)s; check it reads right in that language",
                        text=override,
                        language=_language(language),
                    )
                ),
            )
        )
    return texts[0], texts[1], problems


# --- Rendering --------------------------------------------------------------------------


def _render_problem(part: str, error: Exception) -> LetterProblem:
    if part == "subject":
        message = _l("subject: %(reason)s", reason=str(error))
    else:
        message = _l("body: %(reason)s", reason=str(error))
    return LetterProblem("error", "render_error", said(message))


def render_letter(
    statement: Any,
    contact: object,
    *,
    language: str | None = None,
    today: dt.date | None = None,
    rules: RuleSet | None = None,
    cases: Sequence[Mapping[str, Any]] = (),
    fixed_subject: str | None = None,
) -> RenderedLetter:
    """Merge a statement (a StatementVersion or a LetterSource; for a Statement, its source
    from `services.statements.statements.letter_source`) for one contact and report what is
    wrong; template errors become problems, not exceptions.

    `cases` is the campaign's linked cases as `services.schedules.cases.cases_context` gives
    (letter-safe names); outside a campaign (previews, `campaign render`) there are none.

    `language` forces the text (LanguageUnavailable when the statement has none in it);
    otherwise it is chosen from the contact's languages. `fixed_subject`, when given, is the
    subject as written (already merged: a follow-up's "Re: " + the first letter's subject).
    """
    # The contact's names are asked for five times a letter: worked out once (0082).
    with names_remembered():
        return _render_letter(
            statement,
            contact,
            language=language,
            today=today,
            rules=rules,
            cases=cases,
            fixed_subject=fixed_subject,
        )


def _render_letter(
    statement: Any,
    contact: object,
    *,
    language: str | None,
    today: dt.date | None,
    rules: RuleSet | None,
    cases: Sequence[Mapping[str, Any]],
    fixed_subject: str | None,
) -> RenderedLetter:
    source = letter_source(statement)
    rule_set = rules or RuleSet.builtin()
    today = today or dt.date.today()
    problems: list[LetterProblem] = []

    if language:
        chosen = match_language(language, source.languages)
        if chosen is None:
            raise LanguageUnavailable(language, source.languages)
    else:
        chosen, fallback = choose_language(contact_languages(contact), source.languages)
        if fallback:
            problems.append(fallback)
    un = un_language_problem(_field(contact, "role_type"), chosen)
    if un:
        problems.append(un)

    email = _field(contact, "email").strip()
    if not email:
        problems.append(
            LetterProblem("error", "no_email", said(_l("the contact has no email address")))
        )
    problems += header_problems(contact) or address_problems(contact)

    variables = source.variables(chosen)
    salutation, closing, rule_problems = _salutation_and_closing(
        contact,
        chosen,
        rule_set,
        needed=bool(variables & {"salutation", "closing"}),
    )
    problems += rule_problems

    problems += protocol_problems(contact, chosen, rule_set)

    person = contact_context(contact, chosen, rules=rule_set)
    address = address_lines(contact, chosen, rules=rule_set)
    block = source.signatories(chosen)
    # Copied into plain data once for the subject and the body.
    shared = plain_context(
        {
            "salutation": salutation,
            "closing": closing,
            "contact": person,
            "today": today,
            "statement": {"title": source.title},
            "cases": list(cases),
        }
    )
    subject_source, body_source = source.text(chosen)

    subject = ""
    try:
        subject = (
            fixed_subject
            if fixed_subject is not None
            else render(
                subject_source,
                plain_context(
                    {
                        "address_block": ", ".join(address),
                        "signatories": "; ".join(line for line in block.lines if line),
                    },
                    shared,
                ),
                html=False,
                lang=chosen,
            )
        )
    except RenderError as error:
        problems.append(_render_problem("subject", error))
    else:
        if _HEADER_BREAK.search(subject):
            problems.append(
                LetterProblem(
                    "error",
                    "header_injection",
                    said(
                        _l(
                            "the subject contains a line break or control character once "
                            "merged; a value it prints must be on one line"
                        )
                    ),
                )
            )
        elif len(subject) > MAX_SUBJECT:
            problems.append(
                LetterProblem(
                    "error",
                    "render_error",
                    said(
                        _l(
                            "subject: %(length)d characters once merged; the limit is %(limit)d",
                            length=len(subject),
                            limit=MAX_SUBJECT,
                        )
                    ),
                )
            )
        elif not subject.strip():
            problems.append(
                LetterProblem("warning", "empty_subject", said(_l("the subject is empty")))
            )

    html_body = text_body = ""
    try:
        body = render_body(
            body_source,
            plain_context(
                {"address_block": "\n".join(address), "signatories": block.markdown}, shared
            ),
            lang=chosen,
        )
    except RenderError as error:
        problems.append(_render_problem("body", error))
    else:
        html_body, text_body = body.html, body.text

    return RenderedLetter(
        statement_id=source.statement_id,
        statement_version=source.version,
        contact_id=getattr(contact, "id", None),
        language=chosen,
        to_name=person["full_name"]
        or " ".join(person["position_title"].split())
        or " ".join(person["organisation"].split()),
        to_address=email,
        cc_addresses=tuple(_field(contact, "cc_emails").split()),
        subject=subject,
        html_body=html_body,
        text_body=text_body,
        salutation=salutation,
        closing=closing,
        address_block=address,
        signatory_lines=block.lines,
        problems=tuple(problems),
        signatories_in_body="signatories" in variables,
        letter_date=today,
    )
