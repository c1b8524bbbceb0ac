"""Russian address blocks in the dative: suggestions from morphology, never guesses.

ГОСТ Р 7.0.97-2016 addresses a letter "Послу Кыргызской Республики во Французской
Республике / госпоже Д.Б. Намуновой": the position's head noun (and the adjectives before
it) and the family name in the dative, the rest as written. pymorphy3 (OpenCorpora's
dictionary) declines them; a word it does not know as the expected part of speech makes the
whole suggestion fail, and the block then prints the form as stored and the pre-send check
flags it: a wrong ending is worse than none. Staff confirm or correct the suggestion on the
contact page (Contact.name_dative, position_title_dative, dative_confirmed).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

_CYRILLIC_WORD = re.compile(r"^[А-Яа-яЁё]+(?:-[А-Яа-яЁё]+)*$")
_DECLINABLE_BEFORE_HEAD = {"ADJF", "PRTF"}


@dataclass(frozen=True)
class DativeSuggestion:
    name: str  # "Д.Б. Намуновой" (no-break space); "" when the name cannot be declined
    position_title: str  # "Послу Республики Узбекистан …"; "" when it cannot be declined

    @property
    def complete(self) -> bool:
        return bool(self.name) and bool(self.position_title)


@functools.cache
def _analyzer() -> Any:
    import pymorphy3

    return pymorphy3.MorphAnalyzer()


def _same_case(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _gender_tag(gender: str) -> str | None:
    return {"f": "femn", "m": "masc"}.get(gender)


def decline_family_name(family: str, gender: str) -> str:
    """The family name in the dative ("Намунова", f → "Намуновой"), or "" if unsure."""
    parts = family.split("-")
    if not family or not all(_CYRILLIC_WORD.match(part) for part in parts):
        return ""
    wanted = _gender_tag(gender)
    if wanted is None:
        return ""
    declined = []
    for part in parts:
        form = _decline_surname_part(part, wanted)
        if not form:
            return ""
        declined.append(form)
    return "-".join(declined)


def _decline_surname_part(word: str, gender: str) -> str:
    for parse in _analyzer().parse(word):
        tag = parse.tag
        if "Surn" in tag and "nomn" in tag and "sing" in tag and gender in tag:
            inflected = parse.inflect({"datv"})
            if inflected is not None:
                return _same_case(word, inflected.word)
    # Foreign or indeclinable surnames (Шмидт for a woman, Гюго, Ким) are printed as they are
    # only when the dictionary says so.
    for parse in _analyzer().parse(word):
        if "Fixd" in parse.tag and "nomn" in parse.tag:
            return word
    # Russian-pattern surnames decline by rule whether or not the dictionary knows them
    # (Токаев, Жапаров, Бердымухамедов): the endings are regular.
    return _regular_surname(word, gender)


# (ending in the nominative, ending in the dative), longest first, per gender.
_REGULAR_ENDINGS = {
    "masc": (("ский", "скому"), ("цкий", "цкому"), ("ов", "ову"), ("ев", "еву"),
             ("ёв", "ёву"), ("ин", "ину"), ("ын", "ыну")),
    "femn": (("ская", "ской"), ("цкая", "цкой"), ("ова", "овой"), ("ева", "евой"),
             ("ёва", "ёвой"), ("ина", "иной"), ("ына", "ыной")),
}  # fmt: skip


def _regular_surname(word: str, gender: str) -> str:
    lower = word.lower()
    for ending, dative in _REGULAR_ENDINGS.get(gender, ()):
        if lower.endswith(ending) and len(lower) > len(ending) + 1:
            return _same_case(word, word[: -len(ending)] + dative)
    return ""


def initials(*names: str) -> str:
    """ "Дильноза", "Бахтиёровна" → "Д.Б." (ГОСТ Р 7.0.97: no space between initials);
    a hyphenated name keeps each part: "Касым-Жомарт" → "К.-Ж."."""
    return "".join(
        "-".join(f"{part[0].upper()}." for part in name.strip().split("-") if part)
        for name in names
        if name.strip()
    )


# Pure functions of their text, asked for the address block and again for the pre-send
# check of every Russian letter: a campaign's recipients share titles and names.
@functools.lru_cache(maxsize=4096)
def suggest_name(given: str, family: str, patronymic: str, gender: str) -> str:
    """Initials and the family name in the dative, joined by a no-break space so a line
    never ends between them: "Д.Б. Намуновой"; "" if unsure."""
    family_dative = decline_family_name(family.strip(), gender)
    if not family_dative:
        return ""
    return "\u00a0".join(p for p in (initials(given, patronymic), family_dative) if p)


@functools.lru_cache(maxsize=4096)
def suggest_position_title(title: str) -> str:
    """The title with its head noun (and adjectives before it) in the dative; "" if unsure.

    "Посол Кыргызской Республики во Французской Республике" → "Послу Кыргызской Республики
    во Французской Республике"; "Специальный докладчик ООН …" → "Специальному докладчику
    ООН …". Only the words up to the head noun change: what follows is already in the
    genitive or prepositional and stays as written. Titles joined right after a head noun
    ("Посол, Постоянный представитель …", "Посол и Постоянный представитель") are each
    declined; if one of them cannot be, nothing is suggested.
    """
    words = title.split()
    # The title's nominative group: the words up to the first that cannot be nominative
    # singular (the genitive "Кыргызской Республики", "иностранных дел" that follows).
    group: list[tuple[str, Any]] = []
    for word in words:
        bare = word.strip(",")
        if bare.lower() == "и" and group:
            group.append((word, None))
            continue
        if not _CYRILLIC_WORD.match(bare):
            break
        parse = _nominative(bare, {"NOUN", *_DECLINABLE_BEFORE_HEAD})
        if parse is None:
            break
        group.append((word, parse))
        if word.endswith(","):
            break  # a second title follows
    # The head is the group's last noun; the words before it qualify it ("Старший
    # научный сотрудник": "Старший" reads as a noun too, but here it is an adjective).
    while group and (
        group[-1][1] is None or _nominative(group[-1][0].strip(","), {"NOUN"}) is None
    ):
        group.pop()
    if not group:
        return ""
    out = []
    for position, (word, parse) in enumerate(group):
        if parse is None:
            out.append(word)
            continue
        bare = word.strip(",")
        is_head = position == len(group) - 1
        # Before the head a word is an adjective when it can be one ("Старший"), else the
        # head of a first title joined by "и" ("Посол и Постоянный представитель").
        reading = (
            _nominative(bare, {"NOUN"})
            if is_head
            else _nominative(bare, _DECLINABLE_BEFORE_HEAD) or _nominative(bare, {"NOUN"})
        )
        inflected = reading.inflect({"datv"}) if reading is not None else None
        if inflected is None:
            return ""
        out.append(word.replace(bare, _same_case(bare, inflected.word)))
    rest = words[len(group) :]
    if group[-1][0].endswith(","):
        joined = suggest_position_title(" ".join(rest))
        return " ".join([*out, joined]) if joined else ""
    if rest and rest[0].lower() in _TITLE_JOINS:
        joined = suggest_position_title(" ".join(rest[1:]))
        return " ".join([*out, rest[0], joined]) if joined else ""
    return " ".join(out + rest)


# Words that join a second title right after a head noun ("Посол и Постоянный представитель").
_TITLE_JOINS = frozenset({"и", "/", "—", "-"})


def _nominative(word: str, parts_of_speech: set[str]) -> Any | None:
    for parse in _analyzer().parse(word):
        tag = parse.tag
        if "Abbr" in tag or "Fixd" in tag:
            continue  # an abbreviation (ООН) or an indeclinable word is not a head we decline
        if tag.POS in parts_of_speech and "nomn" in tag and "sing" in tag and parse.score > 0.05:
            return parse
    return None


def suggest(
    *, given: str, family: str, patronymic: str, gender: str, position_title: str
) -> DativeSuggestion:
    return DativeSuggestion(
        suggest_name(given, family, patronymic, gender), suggest_position_title(position_title)
    )
