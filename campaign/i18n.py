"""Interface and reader languages: Flask-Babel set-up, locale choice and catalogue compiling.

Three kinds of language are kept apart (ARCHITECTURE.md, Languages): the *interface*
language of a signed-in user (their stored choice, else the browser's Accept-Language; a
visitor before sign-in: their choice kept in the session, else the browser's), the
*reader's* language of a public page or an e-mail to a stranger (chosen by the view with
`use_reader_language`), and the data's language (a contact's fields per language, handled
by the letters package). This module owns the first two.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, g, has_request_context, request, session
from flask_babel import Babel, refresh
from flask_babel.speaklater import LazyString
from jinja2 import pass_context

log = logging.getLogger(__name__)

# The languages the interface has catalogues for; the first is the source language.
LANGUAGES: tuple[str, ...] = ("en", "fr", "ru")
DEFAULT_LANGUAGE = LANGUAGES[0]
TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
# The session key holding a visitor's explicit choice before sign-in (the sign-in page's
# language links) or the language of the user who just signed out.
SESSION_LANGUAGE = "interface_language"

# A language tag as a person or a browser might send it: "ru", "fr-CH", "zh-Hant-TW".
_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8}){0,3}$")

babel = Babel()


def init_babel(app: Flask) -> None:
    """Compile stale catalogues and attach Flask-Babel with our locale choice."""
    compile_catalogues()
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LANGUAGE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS_DIR))
    babel.init_app(app, locale_selector=select_locale)

    # Staff read times in the organisation's zone (CAMPAIGN_TIMEZONE) unless told otherwise.
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", app.config["CAMPAIGN_CONFIG"].TIMEZONE)

    # Taking the context keeps Jinja from folding `'…'|when` at compile time in the first
    # visitor's locale.
    app.add_template_filter(pass_context(lambda _c, v, f="short": local_time(v, f)), "when")
    app.add_template_filter(pass_context(lambda _c, v, f="medium": local_date(v, f)), "day")
    app.add_template_filter(pass_context(lambda _c, v, d=1: local_percent(v, d)), "percent")
    app.add_template_global(language_name, "language_name")

    @app.context_processor
    def _inject_language() -> dict[str, object]:
        return {
            "interface_language": current_language,
            "interface_languages": LANGUAGES,
            "autonym": autonym,
        }


def autonym(tag: str) -> str:
    """A language as its own readers write it ("français", "русский"), or the tag."""
    try:
        locale = Locale.parse(tag.replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return tag
    return locale.get_display_name(locale) or tag


def language_name(tag: str | None) -> str:
    """A letter's language named in the interface language ("English", "anglais",
    "английский"), or the tag as written when Babel does not know it."""
    if not tag:
        return ""
    try:
        language = Locale.parse(str(tag).replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return str(tag)
    from flask_babel import get_locale

    interface = get_locale() or Locale.parse(DEFAULT_LANGUAGE)
    return language.get_display_name(interface) or str(tag)


def language_names(*tags: str) -> str:
    """Letters' languages named in the interface language, joined by commas."""
    return ", ".join(language_name(tag) for tag in tags)


def lazy_language_names(*tags: str) -> LazyString:
    """`language_names` when read, in the reader's language (a stored text keeps the tags)."""
    return LazyString(language_names, *tags)


def join_texts(separator: str, *parts: object) -> str:
    return separator.join(str(part) for part in parts)


def joined(separator: str, parts: Iterable[object]) -> LazyString:
    """Texts joined by `separator`, each read in the reader's language."""
    return LazyString(join_texts, separator, *parts)


class Said(str):
    """Words in the current language that remember their message, for
    `campaign.scheduling.stored_text.dump` to store and read again in each reader's language.

    For messages that callers treat as plain strings (joined, searched, printed by the CLI,
    sent as JSON) but that a stored result also keeps for later readers (the pre-send
    check's per-contact problems).
    """

    lazy: LazyString


def said(text: LazyString) -> Said:
    """`text` in words now (a real str), its message kept."""
    words = Said(str(text))
    words.lazy = text
    return words


def normalise_tag(value: str | None) -> str:
    """The primary language of a well-formed tag, lower-cased ("fr-CH" → "fr"), else ""."""
    if not value or len(value) > 35 or not _TAG.match(value.strip()):
        return ""
    return value.strip().replace("_", "-").split("-")[0].lower()


def supported(value: str | None) -> str:
    """The interface language for a tag, or "" when there is no catalogue for it."""
    tag = normalise_tag(value)
    return tag if tag in LANGUAGES else ""


def accepted_languages() -> list[str]:
    """The browser's languages, best first; a malformed or huge header counts as none."""
    if not has_request_context():
        return []
    header = request.headers.get("Accept-Language", "")
    if len(header) > 1000:  # a real browser sends a few dozen characters
        return []
    return [tag for tag, _quality in request.accept_languages if tag and tag != "*"]


def choose_language(candidates: Iterable[str | None], available: Sequence[str]) -> str:
    """The first candidate (a tag or a primary language) that `available` holds, else ""."""
    wanted = {normalise_tag(tag): tag for tag in available}
    for candidate in candidates:
        tag = normalise_tag(candidate)
        if tag and tag in wanted:
            return wanted[tag]
    return ""


def select_locale() -> str:
    """Flask-Babel's locale selector: the reader's language on public pages; else the
    signed-in user's stored language, or an anonymous visitor's choice kept in the session;
    else the browser's Accept-Language; else English."""
    reader = g.get("reader_language")
    if not has_request_context():
        # A CLI command or a worker job: the language its code chose, else English.
        return str(reader) if reader else DEFAULT_LANGUAGE
    if reader:
        return str(reader)
    from flask_login import current_user

    if getattr(current_user, "is_authenticated", False):
        stored = supported(getattr(current_user, "language", ""))
        if stored:
            return stored
    # The language chosen on the sign-in page (kept through sign-in by a user who has not
    # chosen one on their account), or the language of the user who signed out here.
    chosen = supported(str(session.get(SESSION_LANGUAGE) or ""))
    if chosen:
        return chosen
    return choose_language(accepted_languages(), LANGUAGES) or DEFAULT_LANGUAGE


def remember_visitor_language(language: str | None) -> str:
    """Keep a visitor's language for the pages before sign-in; returns it, "" if refused."""
    chosen = supported(language)
    if chosen:
        session[SESSION_LANGUAGE] = chosen
        refresh()
    return chosen


def requested_language() -> str:
    """A public page visitor's explicit choice (?lang=, or a form's `lang`), "" if absent
    or not a language tag."""
    if not has_request_context():
        return ""
    value = request.values.get("lang", "")
    return value.strip() if normalise_tag(value) else ""


def use_visitor_language(*stored: str, fallback: Sequence[str] = ()) -> str:
    """Show a public page in its visitor's language, among those with an interface: their
    explicit choice, then `stored` (the recipient's or signer's languages), then the
    browser's, then `fallback` (the letter's language), else English."""
    candidates = [requested_language(), *stored, *accepted_languages(), *fallback]
    return use_reader_language(choose_language(candidates, LANGUAGES) or DEFAULT_LANGUAGE)


def use_reader_language(language: str) -> str:
    """Show the rest of this request in `language` (a public page's reader); returns the
    interface language actually used, English when there is no catalogue for it."""
    chosen = supported(language) or DEFAULT_LANGUAGE
    g.reader_language = chosen  # outside a request too: a CLI command, a worker job
    refresh()
    return chosen


# Where a terminal says which language its user reads, in gettext's order: the first one
# set (not empty) decides (decision 0031, "The command line").
LANGUAGE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def terminal_language(environ: Mapping[str, str] | None = None) -> str:
    """The interface language this terminal's user reads, by gettext's rules.

    The first of LANGUAGE, LC_ALL, LC_MESSAGES and LANG that is set decides. LANGUAGE may
    list several languages, best first ("de:ru"); the first one we have a catalogue for
    wins. "C", "POSIX" or a language without a catalogue means English.
    """
    environ = os.environ if environ is None else environ
    for name in LANGUAGE_VARIABLES:
        value = environ.get(name, "").strip()
        if not value:
            continue
        for entry in value.split(":"):
            # ru_RU.UTF-8, sr_RS@latin → ru_RU, sr_RS
            locale_name = entry.split(".", 1)[0].split("@", 1)[0]
            if locale_name in ("C", "POSIX"):
                return DEFAULT_LANGUAGE
            language = supported(locale_name)
            if language:
                return language
        return DEFAULT_LANGUAGE
    return DEFAULT_LANGUAGE


def local_time(value: datetime | None, format: str = "short") -> str:
    """A moment in the interface locale and the organisation's zone, the zone named."""
    if value is None:
        return ""
    from flask_babel import format_datetime, get_timezone

    zone = get_timezone()
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    abbreviation = aware.astimezone(zone).strftime("%Z") if zone else "UTC"
    return f"{format_datetime(aware, format)} {abbreviation}"


def local_date(value: date | datetime | None, format: str = "medium") -> str:
    """A date in the interface locale ("6 déc. 2026", "6 дек. 2026 г.")."""
    if value is None:
        return ""
    from flask_babel import format_date

    return str(format_date(value, format))


def local_percent(value: float | None, digits: int = 1) -> str:
    """A share given in percent (12.5) as the interface locale writes it: "12.5%",
    "12,5 %", with `digits` decimals."""
    if value is None:
        return ""
    from babel.numbers import format_percent
    from flask_babel import get_locale

    locale = get_locale() or Locale.parse(DEFAULT_LANGUAGE)
    pattern = locale.percent_formats[None].pattern  # "#,##0%", "#,##0\u00a0%"
    if digits > 0:
        # The last digit of the integer part takes the decimals: "#,##0" -> "#,##0.0".
        pattern = re.sub(r"0(?![0#,.])", "0." + "0" * digits, pattern, count=1)
    return str(format_percent(value / 100, format=pattern, locale=locale))


def current_language() -> str:
    """The language this request's strings are shown in."""
    from flask_babel import get_locale

    locale = get_locale()
    return locale.language if locale is not None else DEFAULT_LANGUAGE


def compile_catalogues(directory: Path = TRANSLATIONS_DIR) -> list[Path]:
    """Write each messages.mo older than its messages.po; returns the files written.

    The .po files are the source kept in the repository; the .mo files are build output,
    made here so that every way of starting the app (scripts/run, tests, a worker, gunicorn
    from a checkout) finds them current without a separate step.
    """
    written = []
    for po_path in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as source:
            catalogue = read_po(source, locale=po_path.parent.parent.name)
        temporary = mo_path.with_suffix(".mo.tmp")
        try:
            with temporary.open("wb") as target:
                write_mo(target, catalogue, use_fuzzy=False)
            temporary.replace(mo_path)
        except OSError as error:  # a read-only checkout: the shipped .mo files must do
            log.warning("cannot write %s: %s", mo_path, error)
            continue
        written.append(mo_path)
    return written
