"""In a page shown in French or Russian, find what a reader would still meet in English.

A visible text node that is exactly a catalogue msgid whose translation differs from it (or
is missing) is a string the page showed untranslated; a node that is exactly an
enumeration's code ("un_sr", "head_of_gov") is a code shown instead of its label. Nodes
inside an element marked with another `lang` (a language's own name in a switcher, a
letter's text) are meant to be in that language, and nodes inside `translate="no"` are data
as stored (a contact's position title): both are left out.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po
from playwright.sync_api import Page

from campaign.labels import LABELS

TRANSLATIONS = Path(__file__).resolve().parents[2] / "campaign" / "translations"

TEXT_NODES = """() => {
  const found = [];
  const language = document.documentElement.lang;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.replace(/\\s+/g, " ").trim();
    const parent = node.parentElement;
    if (!text || !parent || !parent.checkVisibility()) continue;
    const marked = parent.closest("[lang]");
    if (marked && marked.lang !== language) continue;
    // translate="no" marks data (a contact's title as stored), not interface text.
    if (parent.closest('[translate="no"]')) continue;
    found.push(text);
  }
  return found;
}"""


@cache
def english_left(language: str) -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    """Msgids a page in `language` must not show: exact strings, and patterns for those
    with placeholders (when their fixed words are long enough to mean something)."""
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalogue = read_po(source, locale=language)
    exact: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for message in catalogue:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if all(strings) and set(strings) <= set(ids):
            continue  # the same in both languages on purpose ("SMTP", "CLDR")
        for msgid in ids:
            shown = " ".join(msgid.replace("%%", "%").split())
            pieces = re.split(r"%\(\w+\)[sdr]|%[sd]", shown)
            if len(pieces) == 1:
                exact.add(shown)
            elif sum(len(re.sub(r"\W", "", piece)) for piece in pieces) >= 12:
                patterns.append(re.compile(".+?".join(re.escape(piece) for piece in pieces)))
    return frozenset(exact), tuple(patterns)


def enumeration_codes() -> frozenset[str]:
    """Codes that never read as words in any language (they have an underscore)."""
    return frozenset(code for table in LABELS.values() for code in table if "_" in code)


def untranslated_nodes(page: Page, language: str) -> list[str]:
    """The text nodes of `page` left in English, or showing a raw code."""
    exact, patterns = english_left(language)
    codes = enumeration_codes()
    nodes: list[str] = page.evaluate(TEXT_NODES)
    return [
        node
        for node in nodes
        if node in exact or node in codes or any(p.fullmatch(node) for p in patterns)
    ]


def assert_translated(page: Page, language: str) -> None:
    assert page.locator("html").get_attribute("lang") == language, page.url
    nodes: list[str] = page.evaluate(TEXT_NODES)
    assert nodes, f"{page.url} shows no text"
    left = untranslated_nodes(page, language)
    assert not left, f"{page.url}: English or codes left in a {language} page: {left}"
