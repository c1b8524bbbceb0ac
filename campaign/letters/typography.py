"""Typography per language, on merged text: French spaces and guillemets, Russian quotes.

French (Imprimerie nationale, Lexique des règles typographiques): a narrow no-break space
(U+202F) before ";", "!" and "?"; a no-break space (U+00A0) before ":" and inside
guillemets « … »; straight double quotes become « » when they pair up unambiguously.
Russian: straight double quotes become « », and a doubled full stop (a date ending
"г." followed by the sentence's stop: "2026 г..") becomes one; an ellipsis stays.
Other languages are left as they are.

Never touched: URLs (bare or in a link's address), e-mail addresses, code, times such as
10:30 and the ":" of "http:". Applying it twice changes nothing.

`typeset_tokens` works on markdown-it inline tokens, so link targets and code are never
seen; `typeset` works on plain text (notices). See docs/decisions/0041.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["NBSP", "NNBSP", "typeset", "typeset_tokens"]

NBSP = "\u00a0"
NNBSP = "\u202f"
_SPACES = " \u00a0\u202f\t"

# Left alone inside a text: URLs, e-mail addresses, and our placeholders' private-use marks.
_PROTECTED = re.compile(
    r"(?:https?://|ftp://|mailto:|www\.)[^\s<>]*[^\s<>.,;:!?)\]»]"
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
    r"|!?\ue000.\ue001!?"  # a value's stand-in (sandbox placeholders): filled in later
)
# A character after which punctuation belongs to the word before it.
_WORD_END = r"[^\W\d_]|\d|[)\]»’\"'%\ue001]"

_FR_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # An existing space of any kind before ; ! ? becomes the narrow no-break space.
    (re.compile(r"[ \u00a0\u202f\t]+(?=[;!?])"), NNBSP),
    # None yet, after a word: "Attention!" (not "?" inside a word or a URL: protected).
    (re.compile(rf"(?<={_WORD_END})(?=[;!?]+(?:[\s\"»)\]]|$))"), NNBSP),
    # Before ":" a no-break space; added only after a letter and before a space or the
    # end, so that 10:30, "http:" and "a:b" stay as they are.
    (re.compile(r"[ \u00a0\u202f\t]+(?=:)"), NBSP),
    (re.compile(r"(?<=[^\W\d_])(?=:(?:\s|$))"), NBSP),
    # Inside guillemets.
    (re.compile(r"«[ \u00a0\u202f\t]*"), "«" + NBSP),
    (re.compile(r"[ \u00a0\u202f\t]*»"), NBSP + "»"),
)
# "г.." → "г.", but an ellipsis and "?.." / "!.." (Russian's own marks) are kept.
_RU_RULES: tuple[tuple[re.Pattern[str], str], ...] = ((re.compile(r"(?<![.?!…])\.\.(?!\.)"), "."),)
# A guillemet left open or closed alone at a token's edge, and the space next to it.
_OPEN_QUOTE = {"fr": "«" + NBSP, "ru": "«"}
_CLOSE_QUOTE = {"fr": NBSP + "»", "ru": "»"}


def _language(lang: str | None) -> str:
    return (lang or "").split("-")[0].split("_")[0].lower()


def typeset(text: str, lang: str | None) -> str:
    """`text` with the typography of `lang` (plain text: URLs and addresses kept)."""
    language = _language(lang)
    if language not in _OPEN_QUOTE:
        return text
    return _typeset_segments([text], language)[0]


def typeset_tokens(
    children: Iterable[object], lang: str | None, values: Iterable[str] = ()
) -> None:
    """Set the typography of one inline token's children in place (markdown-it tokens).

    Text tokens only: code spans are left as typed, and the text of an autolink (the
    address itself) is skipped, so no URL or address changes. `values` (a contact's
    merged values) are left as typed wherever they occur.
    """
    language = _language(lang)
    if language not in _OPEN_QUOTE:
        return
    texts = []
    autolink = False
    for child in children:
        kind = getattr(child, "type", "")
        if kind == "link_open":
            autolink = getattr(child, "markup", "") in {"autolink", "linkify"}
        elif kind == "link_close":
            autolink = False
        elif kind == "text" and not autolink:
            texts.append(child)
    if not texts:
        return
    results = _typeset_segments(
        [str(getattr(t, "content", "")) for t in texts], language, _protection(values)
    )
    for token, result in zip(texts, results, strict=True):
        token.content = result  # type: ignore[attr-defined]


def _protection(values: Iterable[str]) -> re.Pattern[str]:
    """What typography leaves alone: URLs, addresses, placeholders, and these values."""
    texts = sorted({value for value in values if value.strip()}, key=len, reverse=True)
    if not texts:
        return _PROTECTED
    return _protection_of(tuple(texts))


@lru_cache(maxsize=64)
def _protection_of(texts: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join([*map(re.escape, texts), _PROTECTED.pattern]))


def _typeset_segments(
    segments: list[str], language: str, protected: re.Pattern[str] = _PROTECTED
) -> list[str]:
    """Each segment typeset; quotes are paired across the segments (one paragraph)."""
    quoted = _pair_quotes(segments, language, protected)
    rules = _FR_RULES if language == "fr" else _RU_RULES
    out = []
    for index, segment in enumerate(quoted):
        previous = quoted[index - 1][-1:] if index else ""
        out.append(_apply(segment, rules, previous, protected))
    return out


def _apply(
    text: str,
    rules: tuple[tuple[re.Pattern[str], str], ...],
    previous: str,
    protected: re.Pattern[str] = _PROTECTED,
) -> str:
    pieces = []
    last = 0
    for match in protected.finditer(text):
        pieces.append((text[last : match.start()], True))
        pieces.append((match.group(), False))
        last = match.end()
    pieces.append((text[last:], True))
    result = []
    # The character before each piece is put in front while the rules run, so that
    # "**mot**!" gets its space and "г." + "." loses a stop; it is never one that a rule
    # rewrites (a space, a guillemet), and it is taken off again.
    before = previous
    for piece, editable in pieces:
        if editable and piece:
            pad = "\n" if not before or before in _SPACES + "«»" else before
            padded = pad + piece
            for pattern, replacement in rules:
                padded = pattern.sub(replacement, padded)
            piece = padded[1:]
        result.append(piece)
        if piece:
            before = piece[-1]
    return "".join(result)


_QUOTE = '"'
_EDGE = "\x00"  # between two segments; counts as a space for pairing


def _pair_quotes(
    segments: list[str], language: str, protection: re.Pattern[str] = _PROTECTED
) -> list[str]:
    """Straight double quotes as « », when every one of them opens or closes clearly."""
    joined = _EDGE.join(segments)
    if _QUOTE not in joined:
        return segments
    protected = [range(m.start(), m.end()) for m in protection.finditer(joined)]
    positions = [
        i
        for i, char in enumerate(joined)
        if char == _QUOTE and not any(i in span for span in protected)
    ]
    if len(positions) % 2:
        return segments
    for number, position in enumerate(positions):
        before = joined[position - 1] if position else " "
        after = joined[position + 1] if position + 1 < len(joined) else " "
        opening = before in _SPACES + _EDGE + "\n([" and after not in _SPACES + "\n"
        closing = after in _SPACES + _EDGE + "\n.,;:!?)]" and before not in _SPACES + "\n"
        if (number % 2 == 0 and not opening) or (number % 2 == 1 and not closing):
            return segments
    chars = list(joined)
    for number, position in enumerate(positions):
        chars[position] = "«" if number % 2 == 0 else "»"
    return "".join(chars).split(_EDGE)
