"""The address block of a letter: style, honorific and name, position, organisation, country.

"H.E." (and its equivalents) belongs here and only here: the salutation rules refuse it.
Names are taken in the letter's script, as a set, by the same rule the salutations use.
"""

from __future__ import annotations

from typing import Any

from campaign.letters.formatting import letter_locale
from campaign.letters.salutations import RuleSet, primary_language
from campaign.models.contact import Style

# The style of an ambassador or head of state in the address, per language and gender
# ("*": any). Languages without an entry use English.
EXCELLENCY: dict[str, dict[str, str]] = {
    "en": {"*": "H.E."},
    "fr": {"*": "S.E."},
    "ru": {"f": "Её Превосходительство", "m": "Его Превосходительство", "*": ""},
}
# Letters in these scripts print the patronymic between given and family name.
_PATRONYMIC_LANGUAGES = frozenset({"ru", "uk", "be", "kk", "ky", "tg"})


def _text(contact: object, name: str) -> str:
    value = getattr(contact, name, "")
    return "" if value is None else " ".join(str(value).split())


def letter_names(contact: object, language: str, rules: RuleSet | None = None) -> dict[str, str]:
    """Return given, family and patronymic in the letter's script (never mixed)."""
    rule_set = rules or RuleSet.builtin()
    # The salutation rules own the script choice; reuse it so address and salutation agree.
    return rule_set.names(contact, primary_language(language))


def full_name(names: dict[str, str], language: str) -> str:
    parts = [names.get("given", "")]
    if primary_language(language) in _PATRONYMIC_LANGUAGES:
        parts.append(names.get("patronymic", ""))
    parts.append(names.get("family", ""))
    return " ".join(" ".join(parts).split())


def excellency(contact: object, language: str) -> str:
    if _text(contact, "style") != Style.EXCELLENCY.value:
        return ""
    table = EXCELLENCY.get(primary_language(language), EXCELLENCY["en"])
    return table.get(_text(contact, "grammatical_gender"), table.get("*", ""))


def country_name(code: str, language: str) -> str:
    """The country (ISO code, or EU / UN) named in the letter's language."""
    code = code.strip()
    if not code:
        return ""
    territories: Any = letter_locale(language).territories
    return str(territories.get(code.upper(), code))


def address_lines(
    contact: object, language: str, *, rules: RuleSet | None = None
) -> tuple[str, ...]:
    """Return the address block as lines: name (with style and honorific), position,
    organisation, country; empty lines left out."""
    name = full_name(letter_names(contact, language, rules), language)
    first = [excellency(contact, language), _text(contact, "honorific"), name] if name else []
    lines = [
        " ".join(p for p in first if p),
        _text(contact, "position_title"),
        _text(contact, "organisation"),
        country_name(_text(contact, "country"), language),
    ]
    out: list[str] = []
    for line in lines:
        if line and line not in out:
            out.append(line)
    return tuple(out)
