"""Find the words a template shows that do not go through gettext.

A template's literal text (outside `{{ }}` and `{% %}`) is what a reader meets whatever
their language; here it must be only markup, punctuation and a few names that are the
same in every language. Letter templates (email/letter.*, pdf/letter.html) carry the
reader's content, not interface text, and the per-language e-mail bodies are written in
their language: both are left out.
"""

from __future__ import annotations

import re
from pathlib import Path

from jinja2 import Environment

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

# Whole templates whose text is the reader's content or already one file per language.
EXEMPT = {
    "email/letter.html",
    "email/letter.txt",
    "pdf/letter.html",
}
EXEMPT_PATTERN = re.compile(r"\.(en|fr|ru)\.txt$")

# Words the same in every language: product names, protocols, units, file formats.
SAME_IN_EVERY_LANGUAGE = {
    "Campaign", "SMTP", "IMAP", "TOTP", "CSV", "XLSX", "JSON", "ICS", "PDF", "HTML", "UTC",
    "DKIM", "DMARC", "SPF", "RQ", "Redis", "ID", "URL", "MB", "eml", "mbox", "Message-ID",
    "In-Reply-To", "References", "Reply-To", "List-Unsubscribe", "STARTTLS", "SSL", "TLS",
    "Markdown", "Jinja", "OK", "ms", "s", "min", "h", "px", "txt", "http", "https", "www",
}  # fmt: skip

_ATTRIBUTES = re.compile(
    r"""\b(title|placeholder|aria-label|alt|label|data-confirm)\s*=\s*("[^"]*"|'[^']*')""",
    re.IGNORECASE,
)
_TAG = re.compile(r"<[^>]*>", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b.*?</\1>", re.DOTALL | re.IGNORECASE)
_ENTITY = re.compile(r"&#?\w+;")
_WORD = re.compile(r"[^\W\d_][\w'’.-]*")
_EXPRESSION = "\x00"


def literal_text(source: str, environment: Environment) -> str:
    """The template with every Jinja expression and tag replaced by a NUL placeholder."""
    pieces = []
    for _line, kind, value in environment.lex(source):
        if kind == "data":
            pieces.append(value)
        elif kind in {"variable_begin", "block_begin"}:
            pieces.append(_EXPRESSION)
    return "".join(pieces)


def untranslated_words(source: str, environment: Environment) -> list[str]:
    """The words a reader would see that no gettext call produced."""
    text = literal_text(source, environment)
    text = _COMMENT.sub(" ", text)
    text = _SCRIPT_OR_STYLE.sub(" ", text)
    found: list[str] = []
    for match in _ATTRIBUTES.finditer(text):
        found.extend(_WORD.findall(match.group(2)))
    text = _TAG.sub(" ", text)
    text = _ENTITY.sub(" ", text)
    found.extend(_WORD.findall(text))
    return [word for word in found if word.strip(".-'’") not in SAME_IN_EVERY_LANGUAGE]


def interface_templates() -> list[str]:
    names = []
    for path in sorted(TEMPLATES.rglob("*")):
        if path.suffix not in {".html", ".txt"}:
            continue
        name = path.relative_to(TEMPLATES).as_posix()
        if name in EXEMPT or EXEMPT_PATTERN.search(name):
            continue
        names.append(name)
    return names
