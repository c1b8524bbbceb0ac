"""The catalogues are complete: every string translated, none fuzzy, placeholders kept."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

TRANSLATIONS = Path(__file__).resolve().parents[2] / "campaign" / "translations"
_PLACEHOLDER = re.compile(r"%\(\w+\)[sdr]")


@pytest.mark.parametrize("language", ["fr", "ru"])
def test_every_string_is_translated_and_keeps_its_placeholders(language: str) -> None:
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalogue = read_po(source, locale=language)
    assert not catalogue.fuzzy
    problems = []
    for message in catalogue:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        # A fuzzy or empty entry is left out of the .mo file: the reader meets English.
        if message.fuzzy or not all(strings):
            problems.append(f"untranslated: {ids[0]!r}")
            continue
        wanted = set(_PLACEHOLDER.findall(ids[-1]))
        for text in strings:
            if set(_PLACEHOLDER.findall(text)) - set(_PLACEHOLDER.findall(" ".join(ids))):
                problems.append(f"unknown placeholder in {language}: {ids[0]!r}")
            elif not message.pluralizable and set(_PLACEHOLDER.findall(text)) != wanted:
                problems.append(f"placeholder lost in {language}: {ids[0]!r}")
    assert not problems, "\n".join(problems[:20])
