"""The signatory block: co-signers printed the way our published statements print them.

Organisations read "Name (ACRONYM), Country, based in exile in X"; individuals "Name, role,
organisation, country". A signer published as `organisation_only` shows only their
organisation; a `withheld` signer is one translated line and nothing else (not their
organisation, role or country either: together those can identify a person).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from campaign.letters.countries import CountryNames, load_country_names
from campaign.letters.salutations import primary_language
from campaign.letters.sandbox import MarkdownText, markdown_literal
from campaign.models.statement import PublishAs, SignatoryKind

# Languages without an entry here use English.
WITHHELD = {
    "en": "Name withheld for security reasons",
    "fr": "Nom non divulgué pour des raisons de sécurité",
    "ru": "Имя не раскрывается по соображениям безопасности",
    "uk": "Ім'я не розголошується з міркувань безпеки",
    "es": "Nombre omitido por razones de seguridad",
    "de": "Name aus Sicherheitsgründen nicht genannt",
}
# French and Russian would need the country's gender and case after a preposition
# ("en France", "au Kazakhstan"); the parenthesis reads correctly for every country.
IN_EXILE = {
    "en": "based in exile in {country}",
    "fr": "basée en exil ({country})",
    "ru": "в эмиграции ({country})",
    "uk": "в еміграції ({country})",
    "es": "en el exilio ({country})",
    "de": "im Exil ({country})",
}
_FIELDS = ("name", "acronym", "role", "organisation", "country", "exile_country", "group_label")
# The fields an editor may give per letter language (Signatory.translations).
TRANSLATED_FIELDS = ("name", "role", "organisation")


@dataclass(frozen=True)
class SignatoryGroup:
    label: str  # "" for signers without a group
    lines: tuple[str, ...]


@dataclass(frozen=True)
class SignatoryBlock:
    """The block in one language: groups in order, as text lines and as Markdown."""

    groups: tuple[SignatoryGroup, ...]

    # Cached: every letter of a language prints the same block (the instance is frozen).
    @cached_property
    def lines(self) -> tuple[str, ...]:
        """One line per signer, each group after its label, a blank line between groups."""
        out: list[str] = []
        for group in self.groups:
            if out:
                out.append("")
            if group.label:
                out.append(group.label)
            out.extend(group.lines)
        return tuple(out)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @cached_property
    def markdown(self) -> MarkdownText:
        """The block as Markdown a body prints as is: every value escaped, labels in bold."""
        paragraphs: list[str] = []
        for group in self.groups:
            if group.label:
                paragraphs.append(f"**{markdown_literal(group.label)}**")
            # A backslash at the end of a line is a hard break: one signer a line.
            paragraphs.append("\\\n".join(markdown_literal(line) for line in group.lines))
        return MarkdownText("\n\n".join(p for p in paragraphs if p))

    def __bool__(self) -> bool:
        return bool(self.groups)


def _value(signatory: Mapping[str, Any] | object, name: str) -> str:
    if isinstance(signatory, Mapping):
        raw = signatory.get(name, "")
    else:
        raw = getattr(signatory, name, "")
    # Whitespace (line breaks included) collapses: one signer is one line.
    return " ".join(str(raw or "").split())


def withheld_text(language: str) -> str:
    return WITHHELD.get(primary_language(language), WITHHELD["en"])


def _translated(signatory: Mapping[str, Any] | object, language: str) -> Mapping[str, Any]:
    """The signer's own forms in `language` ({"name": …, "role": …, "organisation": …})."""
    if isinstance(signatory, Mapping):
        translations = signatory.get("translations")
    else:
        translations = getattr(signatory, "translations", None)
    if not isinstance(translations, Mapping):
        return {}
    found = translations.get(primary_language(language))
    return found if isinstance(found, Mapping) else {}


def _country(text: str, language: str, countries: CountryNames) -> str:
    """A country as the protocol table names it in the letter's language; free text that
    names no known country is printed as the signer wrote it."""
    code = countries.find(text)
    return (countries.short(code, language) or text) if code else text


def signatory_line(
    signatory: Mapping[str, Any] | object,
    language: str = "en",
    countries: CountryNames | None = None,
) -> str:
    """Return one signer's line as published (never a withheld signer's name), with their
    name, role and organisation in the letter's language where the editors gave them and
    the countries as the protocol table names them."""
    table = countries or load_country_names()
    values = {name: _value(signatory, name) for name in _FIELDS}
    own = _translated(signatory, language)
    for name in TRANSLATED_FIELDS:
        text = " ".join(str(own.get(name) or "").split())
        if text:
            values[name] = text
    for name in ("country", "exile_country"):
        values[name] = _country(values[name], language, table)
    publish_as = _value(signatory, "publish_as") or PublishAs.FULL.value
    kind = _value(signatory, "kind") or SignatoryKind.ORGANISATION.value
    if publish_as not in (PublishAs.FULL.value, PublishAs.ORGANISATION_ONLY.value):
        # Withheld, or a value we do not know: nothing that could identify the signer.
        return withheld_text(language)
    if kind == SignatoryKind.ORGANISATION.value:
        return _organisation(values, language)
    if publish_as == PublishAs.ORGANISATION_ONLY.value:
        # An individual shown by their organisation only; without one, nothing can be shown.
        return values["organisation"] or withheld_text(language)
    parts = [values["name"], values["role"], values["organisation"], values["country"]]
    return ", ".join(p for p in parts if p)


def _organisation(values: Mapping[str, str], language: str) -> str:
    name = values["name"]
    if values["acronym"]:
        name += f" ({values['acronym']})"
    parts = [name, values["country"]]
    if values["exile_country"]:
        phrase = IN_EXILE.get(primary_language(language), IN_EXILE["en"])
        parts.append(phrase.format(country=values["exile_country"]))
    return ", ".join(p for p in parts if p)


def signatory_block(
    signatories: Iterable[Mapping[str, Any] | object], language: str = "en"
) -> SignatoryBlock:
    """Build the block from signatory dicts (a version's snapshot) or rows, in position order.

    Groups appear in the order of their first signer; signers keep their order within a group.
    """
    ordered = sorted(
        enumerate(signatories),
        key=lambda item: (_position(item[1]), item[0]),
    )
    groups: dict[str, list[str]] = {}
    countries = load_country_names()
    for _, signatory in ordered:
        line = signatory_line(signatory, language, countries)
        if line:
            groups.setdefault(_value(signatory, "group_label"), []).append(line)
    return SignatoryBlock(
        tuple(SignatoryGroup(label, tuple(lines)) for label, lines in groups.items())
    )


def _position(signatory: Mapping[str, Any] | object) -> int:
    try:
        return int(_value(signatory, "position") or 0)
    except ValueError:
        return 0
