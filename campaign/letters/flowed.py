"""Plain text as format=flowed (RFC 3676), wrapped at 72 characters.

The text parts we build hold one logical line per paragraph. `flow` wraps them for the
wire: a paragraph's lines end in a space (a soft break) so that a flowed-aware reader joins
them again and wraps them to its own window, while a terminal client shows lines of at
most 72 characters. DelSp=No: every soft break is a space that was in the text, so a
reader that knows only RFC 2646 rejoins it exactly too (DelSp=Yes is for scripts written
without spaces, which we do not send).

- Breaks fall on ASCII spaces only: words, URLs, e-mail addresses and footnote markers
  ("word[3]") are never split, and no-break spaces (U+00A0, U+202F, set by
  campaign.letters.typography) hold "mot ?" together. A token longer than the width
  stands alone on its own line, however long. A "--" in a paragraph stays with the word
  after it: a soft line ending "-- " would be read as the signature separator.
- List items ("- ", "1. ") and footnotes ("[1] "), and indented lines, keep a hanging
  indent: their continuation lines are indented under the text and end hard (no soft
  break). Flowed readers do not keep indents when they rejoin, so these lines are fixed:
  every reader shows them as written.
- Quoted lines (">") keep their depth: ">> text", wrapped as a paragraph at that depth.
- A paragraph whose text opens with ">" comes from markdown_to_text with one space before it
  (" > text"): it is flowed like any other, that space being its first line's stuffing.
- Lines starting with a space, "From " or ">" (as text) are space-stuffed; trailing spaces
  of hard lines are removed (they would join them to the next line); the signature
  separator "-- " is kept as it is.

See docs/decisions/0041-flowed-text-and-typography.md.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["CONTENT_TYPE_PARAMS", "WIDTH", "flow", "unflow"]

WIDTH = 72
# Parameters added to "Content-Type: text/plain; charset=utf-8".
CONTENT_TYPE_PARAMS = (("format", "flowed"), ("delsp", "no"))

SIGNATURE_SEPARATOR = "-- "
_QUOTE = re.compile(r"(?:> ?)*>")
_MARKER = re.compile(r"(?:[-*+•] |\d{1,9}[.)] |\[\d{1,4}\] )")
_PIECE = re.compile(r" *[^ ]+ *")


def flow(text: str, width: int = WIDTH) -> str:
    """`text` (LF or CRLF line ends) as format=flowed lines joined by LF."""
    # Each line of the text is wrapped on its own: a campaign's letters share most of
    # their paragraphs, so each distinct one is wrapped once (decision 0072).
    return "\n".join(
        [
            _flow_line(line, width) if len(line) <= _CACHED_LINE else _wrap_line(line, width)
            for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        ]
    )


def _wrap_line(line: str, width: int) -> str:
    """One line of the text as its format=flowed lines, joined by LF."""
    if line == SIGNATURE_SEPARATOR:
        return line
    line = line.rstrip(" \t")
    if not line:
        return ""
    quote = _QUOTE.match(line)
    if quote:
        depth = quote.group().count(">")
        content = line[quote.end() :]
        content = content[1:] if content.startswith(" ") else content
        prefix = ">" * depth + " "
        return "\n".join(prefix + chunk for chunk in _soft(content, width - len(prefix)))
    if line.startswith(" >") and not line.startswith("  "):
        # A paragraph whose text opens with ">" (markdown_to_text writes it stuffed):
        # flowed like any other, its first line stuffed so it is not read as a quote.
        return "\n".join(_stuff(chunk) for chunk in _soft(line[1:], width - 1))
    indent = len(line) - len(line.lstrip(" "))
    marker = _MARKER.match(line, indent)
    if indent or marker:
        hang = indent + (len(marker.group()) if marker else 0)
        return "\n".join(_stuff(chunk) for chunk in _hard(line, hang, width))
    return "\n".join(_stuff(chunk) for chunk in _soft(line, width))


# Lines up to this length are remembered (a few MB at most); longer ones are rare.
_CACHED_LINE = 2000
_flow_line = lru_cache(maxsize=4096)(_wrap_line)


def _stuff(line: str) -> str:
    if line.startswith((" ", ">", "From ")):
        return " " + line
    return line


def _soft(content: str, width: int) -> list[str]:
    """A paragraph's lines: every line but the last ends with the space(s) it broke at."""
    lines: list[str] = []
    current = ""
    for piece in _pieces(content):
        # The soft-break space counts: no physical line is longer than `width`.
        if current and len(current) + len(piece) > width:
            lines.append(current)
            current = ""
        current += piece
    lines.append(current.rstrip(" "))
    return lines


def _pieces(content: str) -> list[str]:
    """The words a paragraph may break between, spaces after each; a "--" goes with the
    word after it (with the one before when it ends the paragraph). A soft line ending in
    "-- ", or a line of "--" alone, would read as the signature separator: readers cut the
    letter there, or stop joining the paragraph."""
    pieces = _PIECE.findall(content)
    joined: list[str] = []
    glue = False
    for piece in pieces:
        if glue:
            joined[-1] += piece
        else:
            joined.append(piece)
        glue = piece.strip(" ") == "--"
    if len(joined) > 1 and joined[-1].strip(" ") == "--":
        joined[-2:] = [joined[-2] + joined[-1]]
    return joined


def _hard(line: str, hang: int, width: int) -> list[str]:
    """A list item, footnote or indented line: fixed lines, continuations under the text."""
    if len(line) <= width:
        return [line]
    lines: list[str] = []
    current = line[:hang]
    start = len(current)
    for word in line[hang:].split(" "):
        if not word:
            continue
        if len(current) > start and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = " " * hang
            start = hang
        current += (" " if len(current) > start else "") + word
    lines.append(current)
    return [item.rstrip(" ") for item in lines]


def unflow(text: str, *, delsp: bool = False) -> str:
    """Decode format=flowed text (RFC 3676 section 4): soft breaks joined, stuffing removed.

    For reading back what we send (devmail, tests); quote depth is kept as ">" marks.
    """
    logical: list[str] = []
    pending: str | None = None
    pending_depth = 0
    for raw in text.replace("\r\n", "\n").split("\n"):
        depth = len(raw) - len(raw.lstrip(">"))
        line = raw[depth:]
        if line.startswith(" "):
            line = line[1:]
        flowed = line.endswith(" ") and line != SIGNATURE_SEPARATOR
        if flowed and delsp:
            line = line[:-1]
        if pending is not None and depth != pending_depth:
            logical.append(">" * pending_depth + (" " if pending_depth else "") + pending)
            pending = None
        pending = line if pending is None else pending + line
        pending_depth = depth
        if not flowed:
            logical.append(">" * depth + (" " if depth and pending else "") + pending)
            pending = None
    if pending is not None:
        logical.append(">" * pending_depth + (" " if pending_depth else "") + pending)
    return "\n".join(logical)
