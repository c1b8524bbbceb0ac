"""Text written now for people to read later, each in their own language.

The scheduler writes what a fire did (schedule_runs.detail), why a campaign stopped
(campaigns.status_reason) and what a reminder says (notifications.text) from a worker,
in nobody's language; staff read them later in theirs, and a reminder e-mail goes to each
member of staff in their own. So such a text is kept as its message and values, not as
words: a lazy string (`lazy_gettext`, `lazy_ngettext`, `labelled`, `day`, `joined`) is
stored by `dump` as JSON, and `read` turns it into words in the current interface
language. Plain text (rows written before, reasons other modules write, data) is stored
as it is and read as it is, through the catalogue when it is a message of its own
("paused by staff").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any, TypeAlias

from babel import dates
from flask import has_app_context
from flask_babel import force_locale, format_date, gettext, lazy_ngettext, ngettext
from flask_babel.speaklater import LazyString

from campaign.i18n import Said, join_texts, joined, language_names, said
from campaign.labels import label

# What a stored text opens with: the marker that tells it from plain text.
_KEY = "msg"
_OPENING = '{"' + _KEY + '":'

__all__ = [
    "Said",
    "Text",
    "day",
    "dump",
    "english",
    "joined",
    "labelled",
    "lazy_ngettext",
    "lowered",
    "read",
    "rename",
    "said",
    "span",
]

Text: TypeAlias = str | LazyString


def day_text(iso: str, with_year: bool = False) -> str:
    """A date in the interface language: "3 April", "3 avril 2027", "3 апреля 2027"."""
    on = date.fromisoformat(iso)
    pattern = "d MMMM y" if with_year else "d MMMM"
    if not has_app_context():
        return str(dates.format_date(on, pattern, locale="en"))
    return str(format_date(on, pattern))


def span_text(starts: str, ends: str = "") -> str:
    """ "3–4 April", "30 March – 2 April" in the interface language (one day: "3 April")."""
    start = date.fromisoformat(starts)
    end = date.fromisoformat(ends) if ends else start
    if end == start:
        return day_text(starts)
    if (start.year, start.month) == (end.year, end.month):
        return f"{start.day}–{day_text(ends)}"
    return f"{day_text(starts)} – {day_text(ends)}"


def lower_text(text: Any) -> str:
    return str(text).lower()


_FUNCTIONS: dict[str, Callable[..., str]] = {
    "gettext": gettext,
    "ngettext": ngettext,
    "label": label,
    "day": day_text,
    "span": span_text,
    "join": join_texts,
    "lower": lower_text,
    "languages": language_names,
}
_NAMES = {function: name for name, function in _FUNCTIONS.items()}


def day(on: date, *, with_year: bool = False) -> LazyString:
    """`on` in the reader's language, when read."""
    return LazyString(day_text, on.isoformat(), with_year)


def span(starts: date, ends: date | None) -> LazyString:
    """The days from `starts` to `ends` in the reader's language, when read."""
    return LazyString(span_text, starts.isoformat(), ends.isoformat() if ends else "")


def lowered(text: Any) -> LazyString:
    """`text` in lower case, when read (a label inside a sentence)."""
    return LazyString(lower_text, text)


def labelled(code: str, kind: str) -> LazyString:
    """An enumeration's label (campaign.labels) in the reader's language, when read."""
    return LazyString(label, code, kind)


def _encode(value: Any) -> Any:
    if isinstance(value, Said):
        return _encode(value.lazy)
    if isinstance(value, LazyString):
        name = _NAMES.get(value._func)
        if name is None:  # a lazy string of some other kind: its words now
            return str(value)
        encoded: dict[str, Any] = {"f": name, "a": [_encode(arg) for arg in value._args]}
        if value._kwargs:
            encoded["k"] = {key: _encode(item) for key, item in value._kwargs.items()}
        return encoded
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        function = _FUNCTIONS.get(str(value.get("f")))
        if function is None:
            raise ValueError(f"not a stored text: {value!r}")
        args = [_decode(arg) for arg in value.get("a", [])]
        kwargs = {str(key): _decode(item) for key, item in (value.get("k") or {}).items()}
        return LazyString(function, *args, **kwargs)
    if isinstance(value, list):
        raise ValueError("not a stored text: a list")
    return value


def dump(text: Text) -> str:
    """What to store for `text`: JSON for a lazy string, plain text as it is."""
    if isinstance(text, Said):
        text = text.lazy
    if isinstance(text, LazyString):
        encoded = _encode(text)
        if isinstance(encoded, dict):
            return json.dumps({_KEY: encoded}, ensure_ascii=False, separators=(",", ":"))
        return str(encoded)
    return str(text)


def load(stored: str | None) -> Text:
    """The lazy string `dump` stored, or the plain text as it is."""
    if not stored:
        return ""
    if stored.startswith(_OPENING):
        try:
            decoded: Text = _decode(json.loads(stored)[_KEY])
            return decoded
        except (ValueError, TypeError, KeyError):
            return stored
    return stored


def read(stored: str | None) -> str:
    """A stored text in words, in the current interface language.

    Plain text goes through the catalogue too: a fixed reason stored in English (a
    message of its own, "paused by staff") is read in the reader's language; any other
    text is not in the catalogue and comes back unchanged.
    """
    loaded = load(stored)
    if isinstance(loaded, LazyString):
        try:
            return str(loaded)
        except (KeyError, ValueError, TypeError):  # a catalogue entry lost a placeholder
            return str(stored)
    return gettext(loaded) if loaded and has_app_context() else loaded


def english(stored: str | None) -> str:
    """A stored text in English words, as records kept for good say it (the audit log):
    the same words whoever is reading, never the JSON `dump` keeps."""
    if not has_app_context():
        return str(stored or "")
    with force_locale("en"):
        return read(stored)


def rename(stored: str, key: str, old: str, new: str) -> str:
    """The stored text with the value `key`=`old` (a person's name, say) now `new`."""
    if not stored.startswith(_OPENING):
        return stored
    try:
        data = json.loads(stored)
    except ValueError:
        return stored

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            kwargs = value.get("k") or {}
            for name, item in list(kwargs.items()):
                kwargs[name] = new if (name == key and item == old) else walk(item)
            value["a"] = [walk(arg) for arg in value.get("a", [])]
        return value

    return json.dumps({_KEY: walk(data[_KEY])}, ensure_ascii=False, separators=(",", ":"))
