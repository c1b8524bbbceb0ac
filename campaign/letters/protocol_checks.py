"""What a protocol officer would correct in a letter's address, found before sending.

Each finding is a LetterProblem (warning) naming the contact's field, in the staff's
interface language: a Russian dative that no one confirmed or that morphology could not
form; a name, title or organisation printed in a script foreign to the letter's language
(a Cyrillic-only name in an English letter, an English title in a Russian one); an
ambassador without the country of the office; a country code no table names.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

from campaign.i18n import joined, said
from campaign.i18n import lazy_language_names as _language
from campaign.letters.address import (
    dative_forms,
    letter_names,
    localised,
    office_country,
)
from campaign.letters.countries import CountryNames, load_country_names
from campaign.letters.salutations import RuleSet, primary_language
from campaign.letters.types import LetterProblem


@lru_cache(maxsize=4096)
def scripts_in(text: str) -> frozenset[str]:
    """The scripts of the letters in `text` ("LATIN", "CYRILLIC"); digits and signs ignored."""
    found = set()
    for character in text:
        if character.isalpha():
            found.add(unicodedata.name(character, "UNKNOWN").split(" ")[0])
    return frozenset(found)


# The fields a warning names, read in the reader's language (no gettext until then).
_FIELD_LABELS = {
    "name": _l("name"),
    "position_title": _l("position title"),
    "position title": _l("position title"),
    "organisation": _l("organisation"),
}


def _field_label(name: str) -> LazyString:
    return _FIELD_LABELS.get(name, _FIELD_LABELS["name"])


def script_problems(contact: object, language: str, rules: RuleSet) -> list[LetterProblem]:
    """A warning per printed field written in another script than the letter's."""
    expected = rules.script(language)
    names = letter_names(contact, language, rules)
    printed = {
        "name": " ".join(v for v in names.values() if v),
        "position_title": localised(contact, "position_title", language),
        "organisation": localised(contact, "organisation", language),
    }
    problems = []
    for field_name, value in printed.items():
        foreign = scripts_in(value) - {expected}
        if value and foreign and expected not in scripts_in(value):
            problems.append(
                LetterProblem(
                    "warning",
                    "foreign_script",
                    said(
                        _l(
                            "the %(field)s “%(value)s” is not written in the script of the "
                            "letter's language (%(language)s); add the contact's %(field)s in "
                            "that language on the contact page",
                            field=_field_label(field_name),
                            value=value,
                            language=_language(language),
                        )
                    ),
                )
            )
    return problems


def dative_problems(contact: object, rules: RuleSet) -> list[LetterProblem]:
    """Russian letters: the dative forms are suggestions until someone confirms them."""
    names = letter_names(contact, "ru", rules)
    forms = dative_forms(contact, names)
    if not (forms.name or forms.position_title):
        return []  # nothing to decline: an office or a mandate without a person or title
    if forms.undeclined:
        return [
            LetterProblem(
                "warning",
                "dative_undeclined",
                said(
                    _l(
                        "the %(fields)s cannot be put in the dative with confidence and is "
                        "printed as written; enter the dative form on the contact page",
                        fields=joined(", ", [_field_label(f) for f in forms.undeclined]),
                    )
                ),
            )
        ]
    if not forms.confirmed:
        return [
            LetterProblem(
                "warning",
                "dative_unconfirmed",
                said(
                    _l(
                        "the address uses suggested dative forms (“%(name)s”, “%(title)s”) "
                        "that nobody has confirmed; confirm or correct them on the contact page",
                        name=forms.name,
                        title=forms.position_title,
                    )
                ),
            )
        ]
    return []


def country_problems(contact: object, countries: CountryNames) -> list[LetterProblem]:
    problems = []
    code = office_country(contact)
    if code and not countries.name(code, "en"):
        problems.append(
            LetterProblem(
                "error",
                "unknown_country",
                said(
                    _l(
                        "the country code “%(code)s” is in no country table; correct the "
                        "contact or add the country on the Countries page",
                        code=code,
                    )
                ),
            )
        )
    role = str(getattr(contact, "role_type", "") or "")
    if role == "ambassador" and not str(getattr(contact, "location_country", "") or ""):
        problems.append(
            LetterProblem(
                "warning",
                "no_office_country",
                said(
                    _l(
                        "an ambassador without the country of the office: the address prints "
                        "the country represented; set the office's country on the contact page"
                    )
                ),
            )
        )
    return problems


def protocol_problems(
    contact: object,
    language: str,
    rules: RuleSet,
    countries: CountryNames | None = None,
) -> list[LetterProblem]:
    """Every protocol finding for one contact's letter in `language`."""
    table = countries or load_country_names()
    problems = script_problems(contact, language, rules)
    if primary_language(language) == "ru":
        problems += dative_problems(contact, rules)
    return problems + country_problems(contact, table)
