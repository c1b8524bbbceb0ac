"""Contact records: field rules (validation, normalisation) and create / update / delete.

The same rules serve the edit form, the importer and the API, so a value that one path
accepts is never refused by another.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from babel.lists import format_list
from email_validator import EmailNotValidError, validate_email
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.labels import LABELS
from campaign.letters.address import RussianDative
from campaign.letters.countries import load_country_names
from campaign.models import (
    Contact,
    ContactKind,
    GrammaticalGender,
    RiskLevel,
    RoleType,
    Style,
)
from campaign.scheduling.timezones import ScheduleError, zone_of
from campaign.services.accounts.audit import record_event
from campaign.services.contacts.trash import trash_contact
from campaign.services.privacy import erased_addresses
from campaign.services.statements.salutation_rules import current_rule_set

if TYPE_CHECKING:
    from campaign.letters.salutations import RuleSet

MAX_TEXT = 500
MAX_NOTES = 20_000
# Line and paragraph separators, NUL and other control characters are never stored in a
# one-line field: they break letters, CSV exports and mail headers.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
_BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_TAG = re.compile(r"^[\w.:/-]{1,64}$", re.UNICODE)
_SPLIT_LIST = re.compile(r"[;,\s]+")


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ContactInputError(ValueError):
    """One or more fields are invalid; `errors` names each field and what is wrong."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


class InvalidValue(ValueError):
    """One value is not acceptable (an address, a line of text); the message says why."""


def normalise_email(value: str) -> tuple[str, str]:
    """Return (address as stored, case-insensitive key) or raise with the reason."""
    candidate = value.strip()
    if not candidate:
        raise InvalidValue(_("an email address is required"))
    local, _at, domain = candidate.rpartition("@")
    if len(local) > MAX_LOCAL_PART:
        # RFC 5321 4.5.3.1.1; email-validator lets longer SMTPUTF8 local parts through.
        raise InvalidValue(
            _(
                "%(address)s is not a valid email address: the part before the @-sign is "
                "%(length)d characters long; the limit is %(limit)d",
                address=repr(candidate),
                length=len(local),
                limit=MAX_LOCAL_PART,
            )
        )
    fast = _plain_address(local, domain)
    if fast is not None:
        return fast, fast.lower()
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidValue(
            _(
                "%(address)s is not a valid email address: %(reason)s",
                address=repr(candidate),
                reason=_validator_reason(str(error)),
            )
        ) from None
    for part in (result.local_part, *result.domain.split(".")):
        scripts = _scripts_in(part)
        if len(scripts) > 1:
            raise InvalidValue(
                _(
                    "%(address)s mixes %(scripts)s letters in %(part)s; look-alike letters "
                    "are a common impersonation trick, so check the address",
                    address=repr(candidate),
                    scripts=_script_list(scripts),
                    part=repr(part),
                )
            )
    return result.normalized, result.normalized.lower()


# email-validator explains itself in English only. Its commonest explanations are in our
# catalogues under its own wording; any other is shown as it wrote it.
_VALIDATOR_REASONS: dict[str, LazyString] = {
    "An email address must have an @-sign.": _l("An email address must have an @-sign."),
    "There must be something before the @-sign.": _l("There must be something before the @-sign."),
    "There must be something after the @-sign.": _l("There must be something after the @-sign."),
    "The part after the @-sign is not valid. It should have a period.": _l(
        "The part after the @-sign is not valid. It should have a period."
    ),
    "The part after the @-sign is not valid. It is not within a valid top-level domain.": _l(
        "The part after the @-sign is not valid. It is not within a valid top-level domain."
    ),
    "An email address cannot have two periods in a row.": _l(
        "An email address cannot have two periods in a row."
    ),
    "An email address cannot have a period immediately before the @-sign.": _l(
        "An email address cannot have a period immediately before the @-sign."
    ),
    "An email address cannot end with a period.": _l("An email address cannot end with a period."),
    "A display name and angle brackets around the email address are not permitted here.": _l(
        "A display name and angle brackets around the email address are not permitted here."
    ),
    "A bracketed IP address after the @-sign is not allowed here.": _l(
        "A bracketed IP address after the @-sign is not allowed here."
    ),
}
# Explanations that end with the characters at fault ("…: '@'.").
_VALIDATOR_PREFIXES: dict[str, LazyString] = {
    "The part after the @-sign contains invalid characters: ": _l(
        "The part after the @-sign contains invalid characters: %(characters)s"
    ),
    "The email address contains invalid characters before the @-sign: ": _l(
        "The email address contains invalid characters before the @-sign: %(characters)s"
    ),
}


def _validator_reason(reason: str) -> str:
    """email-validator's explanation in the interface language when we have it."""
    known = _VALIDATOR_REASONS.get(reason)
    if known is not None:
        return str(known)
    for prefix, template in _VALIDATOR_PREFIXES.items():
        if reason.startswith(prefix):
            return str(template) % {"characters": reason.removeprefix(prefix)}
    return reason


MAX_LOCAL_PART = 64
MAX_ADDRESS = 254
# RFC 5322 dot-atom in plain ASCII: what nearly every real address is. email-validator
# spends most of its ~85 µs per call on the domain; for these addresses only the domain
# needs its checks, and domains repeat across a contact file, so they are cached.
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def _plain_address(local: str, domain: str) -> str | None:
    """The normalised address if it is a plain ASCII dot-atom at a valid domain, else None.

    None sends the caller to the full validator, which also writes the error message.
    """
    if not _PLAIN_LOCAL.fullmatch(local):
        return None
    checked = _checked_domain(domain)
    if checked is None:
        return None
    normalised_domain, ascii_domain = checked
    if len(local) + 1 + len(ascii_domain) > MAX_ADDRESS:
        return None
    return f"{local}@{normalised_domain}"


@functools.lru_cache(maxsize=4096)
def _checked_domain(domain: str) -> tuple[str, str] | None:
    try:
        probe = validate_email(f"postmaster@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return None
    if len(_scripts_in(probe.domain)) > 1 or any(
        len(_scripts_in(label)) > 1 for label in probe.domain.split(".")
    ):
        return None  # the full path explains the mixed scripts
    return probe.domain, probe.ascii_domain


# Script names as a reader knows them; any other script is shown by its Unicode name.
_SCRIPT_NAMES: dict[str, LazyString] = {
    "LATIN": _l("Latin"),
    "CYRILLIC": _l("Cyrillic"),
    "GREEK": _l("Greek"),
    "ARMENIAN": _l("Armenian"),
    "GEORGIAN": _l("Georgian"),
    "ARABIC": _l("Arabic"),
    "HEBREW": _l("Hebrew"),
}


def _script_list(scripts: set[str]) -> str:
    """ "Cyrillic and Latin" in the interface language."""
    names = sorted(str(_SCRIPT_NAMES.get(s, s.capitalize())) for s in scripts)
    return format_list(names, locale=get_locale() or "en")


def _scripts_in(text: str) -> set[str]:
    # The first word of a letter's Unicode name is its script (LATIN, CYRILLIC, GREEK...).
    return {unicodedata.name(ch, "?").split(" ")[0] for ch in text if ch.isalpha()}


# Invisible formatting characters that can reorder or hide what a letter prints (U+202E
# turns "Посольство" around; U+200B splits a word a search would find). ZWNJ and ZWJ stay:
# Persian and Indic names need them.
_INVISIBLE = re.compile(r"[\u00ad\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


# Half of a UTF-16 pair on its own (JSON's "\ud800"): no text encoding can store it.
_SURROGATE = re.compile(r"[\ud800-\udfff]")

# Any of the three above: one search tells the common clean value apart (an import checks
# some 15 cells a row with it).
_SUSPECT = re.compile(f"{_CONTROL.pattern}|{_INVISIBLE.pattern}|{_SURROGATE.pattern}")


def _lone_surrogate() -> str:
    return _(
        "contains a broken character (half of a surrogate pair) that cannot be stored; "
        "type the text again"
    )


def _one_line(value: str, limit: int = MAX_TEXT) -> str:
    text = value.strip()
    if len(text) <= limit and not _SUSPECT.search(text):
        return text
    if _CONTROL.search(text):
        raise InvalidValue(
            _("must be on one line (it contains a line break or a control character)")
        )
    if _SURROGATE.search(text):
        raise InvalidValue(_lone_surrogate())
    if _INVISIBLE.search(text):
        raise InvalidValue(
            _(
                "contains an invisible formatting character (such as a direction mark or a "
                "zero-width space) that would change how the letter prints it; type it again"
            )
        )
    if len(text) > limit:
        raise InvalidValue(_too_long(len(text), limit))
    return text


def _too_long(length: int, limit: int) -> str:
    return _("is %(length)d characters long; the limit is %(limit)d", length=length, limit=limit)


def _choice(
    options: type[Any],
    *,
    default: str,
    labels: str,
    aliases: Mapping[str, str] | None = None,
) -> Callable[[str], str]:
    """A parser for an enumeration: its code, an alias, or its label in the interface
    language ("Ambassador", "Посол"); the error lists each code with its label
    ("ambassador (Ambassador)"): the API takes codes, a spreadsheet either."""
    allowed = {o.value for o in options}
    table: dict[str, LazyString] = LABELS[labels]

    def parse(value: str) -> str:
        key = value.strip().lower().replace(" ", "_").replace("-", "_")
        if not key:
            return default
        key = (aliases or {}).get(key, key)
        if key in allowed:
            return key
        wanted = value.strip().casefold()
        for code, text in table.items():
            if code in allowed and str(text).casefold() == wanted:
                return code
        raise InvalidValue(
            _(
                "%(value)s is not one of: %(allowed)s",
                value=repr(value.strip()),
                allowed=", ".join(
                    f"{code} ({text})" for code, text in table.items() if code in allowed
                ),
            )
        )

    return parse


def _languages(value: str) -> str:
    tags = [t for t in _SPLIT_LIST.split(value.strip()) if t]
    for tag in tags:
        if not _BCP47.match(tag):
            raise InvalidValue(
                _("%(tag)s is not a language tag such as en, fr, ru or pt-BR", tag=repr(tag))
            )
    seen: list[str] = []
    for tag in tags:
        parts = tag.split("-")
        canonical = "-".join(
            [parts[0].lower(), *[p.upper() if len(p) == 2 else p for p in parts[1:]]]
        )
        if canonical not in seen:
            seen.append(canonical)
    return " ".join(seen)


def _tags(value: str) -> str:
    tags: list[str] = []
    for raw in re.split(r"[;,]+", value.strip()) if ";" in value or "," in value else value.split():
        tag = raw.strip().lower().replace(" ", "-")
        if not tag:
            continue
        if not _TAG.match(tag):
            raise InvalidValue(
                _(
                    "%(tag)s is not a usable tag (letters, digits, - _ . : /)",
                    tag=repr(raw.strip()),
                )
            )
        if tag not in tags:
            tags.append(tag)
    return " ".join(tags)


def _cc_emails(value: str) -> str:
    addresses = [a for a in _SPLIT_LIST.split(value.strip()) if a]
    return " ".join(normalise_email(a)[0] for a in addresses)


def _country(value: str) -> str:
    code = value.strip().upper()
    if not code:
        return ""
    if not re.fullmatch(r"[A-Z]{2}", code) or not load_country_names().knows(code):
        raise InvalidValue(
            _(
                "%(value)s is not a country code the country table knows (two letters such "
                "as FR, UZ or KG, or EU / UN); an administrator can add one on the "
                "Countries page",
                value=repr(value.strip()),
            )
        )
    return code


_TRUE = {"1", "true", "yes", "on", "y", "x", "oui", "да"}
_FALSE = {"", "0", "false", "no", "off", "n", "non", "нет"}


def _flag(value: str) -> bool:
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidValue(_("%(value)s is not yes or no", value=repr(str(value).strip())))


MAX_ZONE = 64  # the column's width; the longest IANA name is about half of it


@functools.cache
def _zone_spellings() -> dict[str, str]:
    # Lower-cased IANA name -> its canonical spelling, so "asia/tashkent" is stored as
    # Asia/Tashkent whatever the file system's case rules.
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def zone_names() -> list[str]:
    """Every IANA zone name, sorted, for the form's suggestions."""
    return sorted(_zone_spellings().values())


def _time_zone(value: str) -> str:
    """An IANA zone name in its canonical spelling; "" (from the country) when blank."""
    text = _one_line(value, MAX_ZONE)
    if not text:
        return ""
    try:
        return zone_of(_zone_spellings().get(text.lower(), text)).key
    except ScheduleError:
        # The form and the import name the field themselves.
        raise InvalidValue(
            _(
                "%(value)s is not a known time zone (use a name such as Europe/Paris)",
                value=repr(text),
            )
        ) from None


def _date(value: str) -> date | None:
    text = value.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidValue(
            _("%(value)s is not a date in the form YYYY-MM-DD", value=repr(text))
        ) from None


def _notes(value: str) -> str:
    text = value.replace("\x00", "").strip()
    if _SURROGATE.search(text):
        raise InvalidValue(_lone_surrogate())
    if len(text) > MAX_NOTES:
        raise InvalidValue(_too_long(len(text), MAX_NOTES))
    return text


_GENDER_ALIASES = {"female": "f", "male": "m", "": "unknown", "u": "unknown", "x": "unknown"}
_STYLE_ALIASES = {"h.e.": "excellency", "he": "excellency", "": "none"}

# Field name -> parser. The order is the order of the edit form and of exports.
FIELD_PARSERS: dict[str, Callable[[str], Any]] = {
    "kind": _choice(
        ContactKind,
        default=ContactKind.PERSON.value,
        labels="contact_kind",
        aliases={"organization": "organisation", "org": "organisation"},
    ),
    "given_name": _one_line,
    "family_name": _one_line,
    "patronymic": _one_line,
    "given_name_alt": _one_line,
    "family_name_alt": _one_line,
    "patronymic_alt": _one_line,
    "grammatical_gender": _choice(
        GrammaticalGender,
        default=GrammaticalGender.UNKNOWN.value,
        labels="gender",
        aliases=_GENDER_ALIASES,
    ),
    "role_type": _choice(RoleType, default=RoleType.OTHER.value, labels="role_type"),
    "style": _choice(Style, default=Style.NONE.value, labels="style", aliases=_STYLE_ALIASES),
    "honorific": _one_line,
    "position_title": _one_line,
    "organisation": _one_line,
    "country": _country,
    "location_country": _country,
    "time_zone": _time_zone,
    "languages": _languages,
    "email": lambda v: normalise_email(v)[0],
    "cc_emails": _cc_emails,
    "tags": _tags,
    "notes": _notes,
    "risk_level": _choice(RiskLevel, default=RiskLevel.PUBLIC.value, labels="risk_level"),
    "consent_basis": _one_line,
    "term_ends_on": _date,
    "last_verified_on": _date,
    "salutation_override": _one_line,
    # The contact in each letter language (decision 0032); "" uses the fields above.
    "given_name_en": _one_line,
    "family_name_en": _one_line,
    "position_title_en": _one_line,
    "organisation_en": _one_line,
    "given_name_fr": _one_line,
    "family_name_fr": _one_line,
    "position_title_fr": _one_line,
    "organisation_fr": _one_line,
    "given_name_ru": _one_line,
    "family_name_ru": _one_line,
    "patronymic_ru": _one_line,
    "position_title_ru": _one_line,
    "organisation_ru": _one_line,
    # The Russian address block's dative forms, as a person confirmed or corrected them.
    "name_dative": _one_line,
    "position_title_dative": _one_line,
    "dative_confirmed": _flag,
}
# Fields whose change makes stored dative forms stale (they were declined from these).
DATIVE_SOURCES = frozenset(
    {
        "given_name", "family_name", "patronymic", "given_name_alt", "family_name_alt",
        "patronymic_alt", "given_name_ru", "family_name_ru", "patronymic_ru",
        "position_title", "position_title_ru", "grammatical_gender",
    }
)  # fmt: skip
DATIVE_FIELDS = ("name_dative", "position_title_dative", "dative_confirmed")
BOOLEAN_FIELDS = frozenset({"dative_confirmed"})
CONTACT_FIELDS: tuple[str, ...] = tuple(FIELD_PARSERS)

# What people see for each field: the edit form, the import's column mapping, messages.
FIELD_LABELS: dict[str, LazyString] = {
    "kind": _l("Kind"),
    "given_name": _l("Given name"),
    "family_name": _l("Family name"),
    "patronymic": _l("Patronymic"),
    "given_name_alt": _l("Given name (other script)"),
    "family_name_alt": _l("Family name (other script)"),
    "patronymic_alt": _l("Patronymic (other script)"),
    "grammatical_gender": _l("Grammatical gender"),
    "role_type": _l("Role type"),
    "style": _l("Style (excellency)"),
    "honorific": _l("Honorific"),
    "position_title": _l("Position title"),
    "organisation": _l("Organisation"),
    "country": _l("Country represented (two letters, or EU / UN)"),
    "time_zone": _l("Time zone"),
    "languages": _l("Languages, in order of preference"),
    "email": _l("Email"),
    "cc_emails": _l("Secretariat / copy addresses"),
    "tags": _l("Tags"),
    "notes": _l("Notes"),
    "risk_level": _l("Risk level"),
    "consent_basis": _l("Consent basis"),
    "term_ends_on": _l("Term ends on"),
    "last_verified_on": _l("Last verified on"),
    "salutation_override": _l("Salutation override"),
    "location_country": _l("Country of the office (where the letter goes)"),
    "given_name_en": _l("Given name in English letters"),
    "family_name_en": _l("Family name in English letters"),
    "position_title_en": _l("Position title in English"),
    "organisation_en": _l("Organisation in English"),
    "given_name_fr": _l("Given name in French letters"),
    "family_name_fr": _l("Family name in French letters"),
    "position_title_fr": _l("Position title in French"),
    "organisation_fr": _l("Organisation in French"),
    "given_name_ru": _l("Given name in Russian letters"),
    "family_name_ru": _l("Family name in Russian letters"),
    "patronymic_ru": _l("Patronymic in Russian letters"),
    "position_title_ru": _l("Position title in Russian"),
    "organisation_ru": _l("Organisation in Russian"),
    "name_dative": _l("Name in the dative (Russian address)"),
    "position_title_dative": _l("Position title in the dative (Russian address)"),
    "dative_confirmed": _l("Dative forms checked by a person"),
}


def clean_contact_data(raw: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate and normalise `raw`; raise ContactInputError naming every bad field.

    Unknown keys are ignored (no mass assignment). With `partial`, fields that are absent
    stay absent; otherwise every field gets its default.
    """
    cleaned: dict[str, Any] = {}
    errors: list[FieldError] = []
    for name, parse in FIELD_PARSERS.items():
        if partial and name not in raw:
            continue
        value = raw.get(name)
        text = "" if value is None else str(value)
        try:
            cleaned[name] = parse(text)
        except InvalidValue as problem:
            errors.append(FieldError(name, str(problem)))
            continue
        width = _column_widths().get(name)
        if width is not None and isinstance(cleaned[name], str) and len(cleaned[name]) > width:
            # The column is narrower than the rule's general limit (a given name: 200);
            # PostgreSQL would refuse the row, SQLite would keep it whole.
            errors.append(FieldError(name, _too_long(len(cleaned[name]), width)))
    if not errors and not partial:
        _check_has_a_name(cleaned, errors)
        _settle_confirmed_dative(cleaned, errors)
    if errors:
        raise ContactInputError(errors)
    if "email" in cleaned:
        cleaned["email_key"] = cleaned["email"].lower()
    return cleaned


# An import cleans each distinct value of a field once (a country, a role, an organisation
# and blank cells repeat down a file): up to this many values a field, each up to this many
# characters. Bounded, so that memory stays flat over any file. Addresses are unique.
MEMO_VALUES = 1024
MEMO_CHARS = 200
_NOT_MEMOISED = frozenset({"email"})
_UNSEEN = object()


def row_cleaner(names: Iterable[str]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """clean_contact_data for many rows that give the fields `names` and no other (an
    import's columns): the same data and the same errors, for less work. A field no row
    gives is cleaned once, not per row; a value seen before in a field is not cleaned
    again (up to MEMO_VALUES values a field). Valid for one import: the countries
    table and the interface language are taken as they are while it runs.
    """
    given = set(names)
    widths = _column_widths()
    template: dict[str, Any] = {}
    steps: list[tuple[str, Callable[[str], Any], int | None, dict[str, Any] | None]] = []
    for name, parse in FIELD_PARSERS.items():
        if name in given:
            template[name] = None  # keeps clean_contact_data's order of fields
            memo: dict[str, Any] | None = None if name in _NOT_MEMOISED else {}
            steps.append((name, parse, widths.get(name), memo))
            continue
        try:
            template[name] = parse("")
        except InvalidValue:
            # Every row would be refused for this field: let clean_contact_data say so.
            return clean_contact_data

    # The naming fields that can hold a name: the given ones (the others are blank).
    naming = tuple(name for name in _NAMING_FIELDS if name in given or template.get(name))
    # What checking reads from the database, read now: an import checks rows while a second
    # thread writes with the session (decision 0079).
    load_country_names()
    rules = current_rule_set() if "dative_confirmed" in given else None

    def clean(raw: Mapping[str, Any]) -> dict[str, Any]:
        cleaned = template.copy()
        errors: list[FieldError] = []
        for name, parse, width, memo in steps:
            value = raw.get(name)
            text = "" if value is None else str(value)
            result: Any = _UNSEEN if memo is None else memo.get(text, _UNSEEN)
            if result is _UNSEEN:
                try:
                    result = parse(text)
                except InvalidValue as problem:
                    errors.append(FieldError(name, str(problem)))
                    continue
                if memo is not None and len(memo) < MEMO_VALUES and len(text) <= MEMO_CHARS:
                    memo[text] = result
            if width is not None and isinstance(result, str) and len(result) > width:
                errors.append(FieldError(name, _too_long(len(result), width)))
            cleaned[name] = result
        if not errors:
            _check_has_a_name(cleaned, errors, naming)
            _settle_confirmed_dative(cleaned, errors, rules)
        if errors:
            raise ContactInputError(errors)
        if "email" in cleaned:
            cleaned["email_key"] = cleaned["email"].lower()
        return cleaned

    return clean


# What a cell cleaner makes of a row: the cleaned data and the fields whose cell was not
# blank, or None when the row needs the full check (a bad value, no name, a confirmation).
CleanedCells = tuple[dict[str, Any], tuple[str, ...]]


def cell_cleaner(
    columns: Sequence[tuple[int, str]],
    fixed: Mapping[str, str],
    restore: Callable[[str], str],
) -> Callable[[Sequence[str]], CleanedCells | None]:
    """The common case of an import's row check, lean (decision 0083): each row's cells
    (`columns`: cell position, field) with the values `fixed` for all rows, cleaned as
    `row_cleaner(fields)` cleans them, when the row is valid.

    It returns None for any row it does not vouch for: a value that fails its rule, a row
    without a name, a confirmed dative (whose forms are settled with the salutation rules).
    The caller then checks that row with `row_cleaner`, which names every problem: the
    errors, their order and their wording stay that path's. What it does not redo per row:
    each field's cleaned value *and* whether its cell was blank are remembered per distinct
    cell text (raw, before `restore`, which takes a quote off an exported formula), the
    template holds the defaults and the fixed values once cleaned, and the fields no row
    gives are not visited. A value is remembered only once it passed its rule and its
    column's width, so a remembered value needs no check again.
    """
    widths = _column_widths()
    names = {name for _index, name in columns}
    if len(names) != len(columns):
        # clean_mapping refuses two columns for one field; the full path would keep the
        # last one's value and this one the first's, so say so instead of guessing.
        raise ValueError(f"one field mapped from two columns: {[n for _i, n in columns]}")
    template: dict[str, Any] = {}
    for name, parse in FIELD_PARSERS.items():
        if name in names:
            template[name] = None
            continue
        try:
            template[name] = parse(str(fixed.get(name, "")))
        except InvalidValue:
            return _refer_every_row
        width = widths.get(name)
        if width is not None and isinstance(template[name], str) and len(template[name]) > width:
            return _refer_every_row
    if template.get("dative_confirmed") or "dative_confirmed" in names:
        return _refer_every_row  # its forms are settled per row: row_cleaner does it
    naming = tuple(name for name in _NAMING_FIELDS if name in names or template.get(name))
    # Per column: the field, its parser, its width, and text -> (cleaned, cell not blank).
    plan: list[tuple[int, str, Callable[[str], Any], int | None, dict[str, Any] | None]] = [
        (
            index,
            name,
            FIELD_PARSERS[name],
            widths.get(name),
            None if name in _NOT_MEMOISED else {},
        )
        for index, name in columns
    ]
    load_country_names()  # read before the rows, as row_cleaner does (decision 0079)

    def learn(
        text: str, parse: Callable[[str], Any], width: int | None, memo: dict[str, Any] | None
    ) -> Any:
        value = restore(text) if text[:1] == "'" else text
        try:
            result = parse(value)
        except InvalidValue:
            return None
        if width is not None and isinstance(result, str) and len(result) > width:
            return None
        known = (result, bool(value) and not value.isspace())
        if memo is not None and len(memo) < MEMO_VALUES and len(text) <= MEMO_CHARS:
            memo[text] = known
        return known

    def clean(cells: Sequence[str]) -> CleanedCells | None:
        cleaned = template.copy()
        given: list[str] = []
        for index, name, parse, width, memo in plan:
            text = cells[index]
            known = None if memo is None else memo.get(text)
            if known is None:
                known = learn(text, parse, width, memo)
                if known is None:
                    return None
            cleaned[name] = known[0]
            if known[1]:
                given.append(name)
        for name in naming:
            if cleaned[name]:
                break
        else:
            return None  # no name: row_cleaner says so
        cleaned["email_key"] = cleaned["email"].lower()
        return cleaned, tuple(given)

    return clean


def _refer_every_row(_cells: Sequence[str]) -> CleanedCells | None:
    return None


@functools.cache
def _column_widths() -> dict[str, int]:
    """Each contact field's stored width, for the text columns that have one."""
    widths: dict[str, int] = {}
    for name in FIELD_PARSERS:
        length = getattr(Contact.__table__.c[name].type, "length", None)
        if isinstance(length, int):
            widths[name] = length
    return widths


# A name, an organisation or a title in any language is enough to address a letter.
_NAMING_FIELDS = tuple(
    name
    for name in FIELD_PARSERS
    if name.split("_")[0] in {"given", "family", "organisation", "position"}
    and not name.endswith(("_alt", "_dative"))
)


def _check_has_a_name(
    cleaned: Mapping[str, Any], errors: list[FieldError], fields: tuple[str, ...] = _NAMING_FIELDS
) -> None:
    if not any(cleaned.get(name) for name in fields):
        errors.append(
            FieldError(
                "family_name", _("a contact needs a name, an organisation or a position title")
            )
        )


def _settle_confirmed_dative(
    cleaned: dict[str, Any], errors: list[FieldError], rules: RuleSet | None = None
) -> None:
    """A confirmation covers forms someone saw: empty dative fields take the suggestion
    the page showed as their placeholder, so what is stored is what was confirmed (a later
    morphology upgrade cannot change a confirmed letter). No suggestion, no confirmation."""
    if not cleaned.get("dative_confirmed"):
        return
    from types import SimpleNamespace

    forms = dative_of(SimpleNamespace(**cleaned), rules)
    if forms.undeclined:
        errors.append(
            FieldError(
                "dative_confirmed",
                _("enter the dative forms before confirming them (no suggestion can be made)"),
            )
        )
        return
    cleaned["name_dative"] = cleaned.get("name_dative") or forms.name
    cleaned["position_title_dative"] = cleaned.get("position_title_dative") or (
        forms.position_title
    )


def dative_of(contact: object, rules: RuleSet | None = None) -> RussianDative:
    """The forms a Russian letter prints for this contact, and whether a person saw them."""
    from campaign.letters.address import dative_forms, letter_names

    return dative_forms(contact, letter_names(contact, "ru", rules or current_rule_set()))


def confirm_dative(contact: Contact, shown_name: str, shown_title: str) -> None:
    """Confirm the dative forms a page showed; refused (ContactInputError) when there is
    nothing to confirm or the contact changed since the page was shown."""
    dative = dative_of(contact)
    if dative.undeclined or not (dative.name or dative.position_title):
        raise ContactInputError(
            [
                FieldError(
                    "dative_confirmed",
                    _("There is no suggestion to confirm; enter the forms on the edit page."),
                )
            ]
        )
    if (shown_name, shown_title) != (dative.name, dative.position_title):
        # Someone edited the contact since the page was drawn: confirm only what was seen.
        raise ContactInputError(
            [
                FieldError(
                    "dative_confirmed",
                    _("The contact changed since the page was shown; check the forms again."),
                )
            ]
        )
    update_contact(
        contact,
        {
            "name_dative": dative.name,
            "position_title_dative": dative.position_title,
            "dative_confirmed": "yes",
        },
    )


def find_by_email(email: str) -> Contact | None:
    """The live contact with this address (the trash is not searched)."""
    return db.session.scalar(
        select(Contact).where(
            Contact.email_key == email.strip().lower(), Contact.deleted_at.is_(None)
        )
    )


def _ensure_address_free(email_key: str, current_id: int | None) -> None:
    query = select(Contact.id).where(Contact.email_key == email_key, Contact.deleted_at.is_(None))
    existing = db.session.scalar(query)
    if existing is not None and existing != current_id:
        raise ContactInputError(
            [
                FieldError(
                    "email",
                    _(
                        "another contact (#%(id)d) already has the address %(address)s",
                        id=existing,
                        address=email_key,
                    ),
                )
            ]
        )


def _refuse_erased(email_key: str, cc_emails: str = "") -> None:
    # A person erased on request is never written to again, not even as a copy (0090).
    try:
        test = erased_addresses.erased_key_test()  # None when nobody was erased
    except erased_addresses.ErasureKeyMissing as error:
        raise ContactInputError([FieldError("email", str(error))]) from None
    if test is None:
        return
    copies = erased_addresses.erased_copies(cc_emails, test)
    if email_key and test(email_key):
        raise ContactInputError([FieldError("email", erased_addresses.erased_reason())])
    if copies:
        raise ContactInputError(
            [FieldError("cc_emails", erased_addresses.erased_copy_reason(copies))]
        )


def create_contact(raw: Mapping[str, Any]) -> Contact:
    """Create a contact from form-like data; the address must not be taken nor erased."""
    data = clean_contact_data(raw)
    _ensure_address_free(data["email_key"], None)
    _refuse_erased(data["email_key"], data["cc_emails"])
    contact = Contact(**data)
    db.session.add(contact)
    db.session.flush()
    record_event("contact.create", target_type="contact", target_id=contact.id)
    return contact


def update_contact(contact: Contact, raw: Mapping[str, Any]) -> list[str]:
    """Apply the fields present in `raw`; return the names of fields that changed."""
    data = clean_contact_data({**_as_raw(contact), **raw})
    _ensure_address_free(data["email_key"], contact.id)
    if data["email_key"] != contact.email_key:
        _refuse_erased(data["email_key"], data["cc_emails"])
    elif data["cc_emails"] != contact.cc_emails:
        _refuse_erased("", data["cc_emails"])
    changed = [k for k, v in data.items() if getattr(contact, k) != v and k != "email_key"]
    if DATIVE_SOURCES & set(changed) and not set(DATIVE_FIELDS) & set(changed):
        # The dative was declined from the old name or title: suggest it afresh.
        data.update(name_dative="", position_title_dative="", dative_confirmed=False)
        changed += [k for k in DATIVE_FIELDS if getattr(contact, k) != data[k]]
    for key in changed:
        setattr(contact, key, data[key])
    contact.email_key = data["email_key"]
    if changed:
        db.session.flush()
        record_event(
            "contact.update",
            target_type="contact",
            target_id=contact.id,
            detail={"fields": changed},
        )
    return changed


def _as_raw(contact: Contact) -> dict[str, str]:
    raw: dict[str, str] = {}
    for name in CONTACT_FIELDS:
        value = getattr(contact, name)
        if isinstance(value, bool):
            raw[name] = "yes" if value else ""
        else:
            raw[name] = value.isoformat() if isinstance(value, date) else (value or "")
    return raw


def delete_contact(contact: Contact) -> None:
    """Move a contact to the trash (kept 30 days, restorable); suppressions stay."""
    trash_contact(contact)


def count_contacts() -> int:
    return int(
        db.session.scalar(select(func.count(Contact.id)).where(Contact.deleted_at.is_(None))) or 0
    )
