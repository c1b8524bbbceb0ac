"""The address block of a letter: style, name, position, organisation, the office's country.

"H.E." (and its equivalents) belongs here and only here: the salutation rules refuse it.
Names, titles and organisations are taken in the letter's language when the contact has
them (given_name_ru, position_title_fr, …), else as stored; names in the letter's script,
as a set, by the same rule the salutations use. The last line is the country where the
office is (location_country; the represented country when none is recorded), named as
the protocol table has it (campaign.letters.countries).

Each language has its protocol (../shared/domain/salutations.md):
- English: "H.E. Ms Aida Bekova", position, organisation, country.
- French: "Son Excellence Madame Aida Bekova" (or "Madame Aida Bekova"), then the rest.
- Russian: the dative (ГОСТ Р 7.0.97-2016: the position, then the person): "Её
  Превосходительству / Послу Кыргызской Республики во Французской Республике / госпоже
  Д.Б. Бековой / organisation / Франция".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from campaign.letters import russian_dative as morphology
from campaign.letters.countries import CountryNames, load_country_names
from campaign.letters.salutations import RuleSet, primary_language
from campaign.models.contact import Style

# The style of an ambassador or head of state in the address, per language and gender
# ("*": any). Languages without an entry use English.
EXCELLENCY: dict[str, dict[str, str]] = {
    "en": {"*": "H.E."},
    "fr": {"*": "Son Excellence"},
    "ru": {"f": "Её Превосходительству", "m": "Его Превосходительству", "*": ""},
}
# The civility before a name, per language and gender, where protocol writes one.
CIVILITY: dict[str, dict[str, str]] = {
    "en": {"f": "Ms", "m": "Mr"},
    "fr": {"f": "Madame", "m": "Monsieur"},
    "ru": {"f": "госпоже", "m": "господину"},
}
# Letters in these scripts print the patronymic between given and family name.
_PATRONYMIC_LANGUAGES = frozenset({"ru", "uk", "be", "kk", "ky", "tg"})


def _text(contact: object, name: str) -> str:
    value = getattr(contact, name, "")
    return "" if value is None else " ".join(str(value).split())


def localised(contact: object, name: str, language: str) -> str:
    """A field in the letter's language (position_title_ru), else as stored."""
    return _text(contact, f"{name}_{primary_language(language)}") or _text(contact, name)


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


def civility(contact: object, language: str) -> str:
    table = CIVILITY.get(primary_language(language), {})
    return table.get(_text(contact, "grammatical_gender"), "")


def country_name(code: str, language: str, countries: CountryNames | None = None) -> str:
    """The country (ISO code, or EU / UN) named in the letter's language, as protocol has
    it; "" for a code no table knows (never the raw code in a letter)."""
    code = code.strip()
    if not code:
        return ""
    return (countries or load_country_names()).short(code, language)


def office_country(contact: object) -> str:
    """Where the office is: location_country, else the country (a person at home)."""
    return _text(contact, "location_country") or _text(contact, "country")


@dataclass(frozen=True)
class RussianDative:
    """What a Russian block prints for the person and the title, and how sure it is."""

    name: str
    position_title: str
    confirmed: bool
    undeclined: tuple[str, ...] = field(default=())  # "name", "position title"


def dative_forms(contact: object, names: dict[str, str]) -> RussianDative:
    """The stored dative forms, else morphology's suggestion, else the forms as written."""
    title = localised(contact, "position_title", "ru")
    stored_name = _text(contact, "name_dative")
    stored_title = _text(contact, "position_title_dative")
    confirmed = bool(getattr(contact, "dative_confirmed", False))
    suggestion = None
    if not (stored_name and (stored_title or not title)):
        suggestion = morphology.suggest(
            given=names.get("given", ""),
            family=names.get("family", ""),
            patronymic=names.get("patronymic", ""),
            gender=_text(contact, "grammatical_gender"),
            position_title=title,
        )
    undeclined = []
    name = stored_name or (suggestion.name if suggestion else "")
    if not name and (names.get("given") or names.get("family")):
        undeclined.append("name")
        name = full_name(names, "ru")
    declined_title = stored_title or (suggestion.position_title if suggestion else "")
    if title and not declined_title:
        undeclined.append("position title")
        declined_title = title
    return RussianDative(name, declined_title, confirmed and not undeclined, tuple(undeclined))


def address_lines(
    contact: object,
    language: str,
    *,
    rules: RuleSet | None = None,
    countries: CountryNames | None = None,
) -> tuple[str, ...]:
    """Return the address block as lines; empty lines left out."""
    primary = primary_language(language)
    names = letter_names(contact, language, rules)
    name = full_name(names, language)
    organisation = localised(contact, "organisation", language)
    location = country_name(office_country(contact), language, countries)
    if primary == "ru":
        dative = dative_forms(contact, names)
        # "господину" before a name left in the nominative would be a grammatical error.
        polite = "" if "name" in dative.undeclined else civility(contact, "ru")
        person = " ".join(p for p in (polite, dative.name) if p)
        # A line of the block starts with a capital ("министр …" typed in lower case).
        title = dative.position_title[:1].upper() + dative.position_title[1:]
        lines = [excellency(contact, "ru"), title, person, organisation, location]
    else:
        # An honorific the contact has ("Dr", "Professor") replaces Ms / Madame.
        polite = _text(contact, "honorific") or civility(contact, primary)
        first = [excellency(contact, language), polite]
        lines = [
            " ".join(p for p in (*first, name) if p) if name else "",
            localised(contact, "position_title", language),
            organisation,
            location,
        ]
    out: list[str] = []
    for line in lines:
        if line and line not in out:
            out.append(line)
    return tuple(out)
