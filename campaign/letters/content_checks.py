"""What a reader would see wrong in a letter: the pre-send check's reading of the text itself.

Pure functions over one rendered letter (the statement's Markdown source of that language, the
HTML part, the text part, the subject) that return problems with the source line they come
from. Nothing here knows about contacts or the database; `services/presend.py` calls
`check_content` once per (statement, language) and `salutation_problem` per recipient.

The source is read with markdown-it, like the renderer, but with footnote definitions left in
place (`move_to_end=False`) so that each keeps its line. Text tokens are exactly what both
parts print verbatim: a `**`, `](` or `[^` in a text token is Markdown the reader will see
as typed. Every scan is linear in the size of the text (decision 0039).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser

from flask_babel import gettext as _
from flask_babel import ngettext
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin

from campaign.letters.markdown import ALLOWED_LINK_SCHEMES

# A subject longer than this is cut in most mail programs' lists and on phones.
MAX_SUBJECT = 120
# A paragraph of at least this many source lines joined by single line breaks is suspect...
MERGED_LINES = 3
# ...when most of its breaks follow the end of a sentence or a line this long (pasted text).
LONG_LINE = 100
# Words shown either side of the first difference between the parts.
CONTEXT_WORDS = 4

_SENTENCE_END = tuple(".!?:;…»”\"'’)")
_FOOTNOTE_REF = re.compile(r"\[\^([^\]\s]*)\]")
_MARKERS = ("[^", "**", "](")
_BRACKETED = re.compile(r"\[[^\]\s]{1,20}\]")
_EDGE = re.compile(r"^\W+|\W+$")
_INVISIBLE = str.maketrans("", "", "\u2060\u200b\u200c\u200d\ufeff\u00ad")
_GREETINGS = {
    "en": ("dear",),
    "fr": ("madame", "monsieur", "cher", "chère", "chers", "chères"),
    "ru": ("уважаемый", "уважаемая", "уважаемые", "добрый день", "дорогой", "дорогая"),
}
_CLOSINGS = {
    "en": (
        "yours sincerely",
        "yours faithfully",
        "yours truly",
        "sincerely",
        "kind regards",
        "best regards",
        "regards",
        "respectfully",
        "with respect",
        "please accept",
        "signed:",
    ),
    "fr": (
        "veuillez agréer",
        "je vous prie d'agréer",
        "je vous prie d’agréer",
        "nous vous prions d'agréer",
        "nous vous prions d’agréer",
        "cordialement",
        "respectueusement",
        "bien à vous",
        "salutations",
    ),
    "ru": ("с уважением", "с глубоким уважением", "искренне", "с наилучшими пожеланиями"),
}


@dataclass(frozen=True)
class ContentProblem:
    """One thing a reader would see wrong, with the source line it comes from (1-based; 0 when
    it is the subject or no single line)."""

    severity: str  # "error" (stops the launch) or "warning"
    code: str
    line: int
    message: str


@dataclass(frozen=True)
class LetterContent:
    """One letter as its recipient will read it, with its Markdown source."""

    source: str  # the statement's body in this language, as written (Markdown with {{ }})
    html: str  # the HTML part (fragment)
    text: str  # the text part
    subject: str
    language: str
    closing: str = ""  # the closing this letter prints with {{ closing }} ("" if none)
    signatory_lines: tuple[str, ...] = ()  # the signatory block, printed by body or layout


# --- the source, parsed once -----------------------------------------------------------


def _validate_link(url: str) -> bool:
    return url.strip().lower().startswith(ALLOWED_LINK_SCHEMES)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.use(footnote_plugin, move_to_end=False)
    md.disable("image")
    md.validateLink = _validate_link  # type: ignore[method-assign]
    return md


@dataclass
class _Source:
    lines: list[str]
    tokens: list[Token]


def _read(source: str) -> _Source:
    return _Source(source.split("\n"), _parser().parse(source, {}))


def _quote(text: str) -> str:
    return f"“{text}”"


# --- footnotes ------------------------------------------------------------------------


def _inline_runs(tokens: Sequence[Token]) -> Iterable[tuple[int, Token, int]]:
    """(source line, child token, depth in footnote definitions) for every inline child."""
    depth = 0
    for token in tokens:
        if token.type == "footnote_reference_open":
            depth += 1
        elif token.type == "footnote_reference_close":
            depth -= 1
        elif token.type == "inline" and token.map:
            line = token.map[0] + 1
            for child in token.children or ():
                yield line, child, depth
                if child.type in {"softbreak", "hardbreak"}:
                    line += 1


def _footnote_problems(parsed: _Source) -> list[ContentProblem]:
    problems: list[ContentProblem] = []
    definitions: dict[str, list[int]] = {}
    body_refs: set[str] = set()
    note_refs: dict[str, set[str]] = {}  # label -> labels of the notes that refer to it
    current: list[str] = []
    for token in parsed.tokens:
        if token.type == "footnote_reference_open":
            label = str(token.meta["label"])
            definitions.setdefault(label, []).append((token.map or [0])[0] + 1)
            current.append(label)
        elif token.type == "footnote_reference_close":
            current.pop()
        elif token.type == "inline":
            for child in token.children or ():
                if child.type == "footnote_ref":
                    label = str(child.meta.get("label", ""))
                    if current:
                        note_refs.setdefault(label, set()).add(current[-1])
                    else:
                        body_refs.add(label)
    undefined_seen: set[tuple[str, int]] = set()
    for line, child, _depth in _inline_runs(parsed.tokens):
        if child.type != "text" or "[^" not in child.content:
            continue
        for match in _FOOTNOTE_REF.finditer(child.content):
            label = match.group(1)
            if not label or (label, line) in undefined_seen:
                continue
            undefined_seen.add((label, line))
            problems.append(
                ContentProblem(
                    "error",
                    "footnote_undefined",
                    line,
                    _(
                        "the reader sees %(marker)s printed as it is: no footnote %(label)s is "
                        "defined. Add a line “[^%(label)s]: …” with its text after the "
                        "letter, or remove the reference",
                        marker=_quote(match.group(0)),
                        label=label,
                    ),
                )
            )
    for label, lines in definitions.items():
        if len(lines) > 1:
            problems.append(
                ContentProblem(
                    "error",
                    "footnote_duplicate",
                    lines[0],
                    _(
                        "footnote %(marker)s is defined more than once (lines %(lines)s); the "
                        "reader sees only the last text (line %(last)d). Keep one definition "
                        "and give the other note its own label",
                        marker=_quote(f"[^{label}]"),
                        lines=", ".join(str(n) for n in lines),
                        last=lines[-1],
                    ),
                )
            )
        referrers = note_refs.get(label, set()) - {label}
        if label not in body_refs and not (referrers & body_refs):
            problems.append(
                ContentProblem(
                    "error",
                    "footnote_unused",
                    lines[0],
                    _(
                        "footnote %(marker)s is defined but nothing in the letter refers to "
                        "it, so the reader never sees it. Put %(marker)s where it belongs in "
                        "the text, or delete the definition",
                        marker=_quote(f"[^{label}]"),
                    ),
                )
            )
        elif referrers:
            problems.append(
                ContentProblem(
                    "warning",
                    "footnote_nested",
                    lines[0],
                    _(
                        "footnote %(marker)s is referred to from inside another footnote "
                        "(%(notes)s): the reader has to go from note to note. Fold its text "
                        "into that note, or refer to it from the letter itself",
                        marker=_quote(f"[^{label}]"),
                        notes=", ".join(f"[^{n}]" for n in sorted(referrers)),
                    ),
                )
            )
    return problems


# --- Markdown left in the text --------------------------------------------------------


def _marker_message(marker: str) -> str:
    if marker == "**":
        return _(
            "the reader sees “**” printed as it is: bold text that does not open or close "
            "(a space inside the stars, or a missing pair). Write **words** with no space "
            "inside the stars, or remove them"
        )
    if marker == "](":
        return _(
            "the reader sees a link as Markdown, “[text](address)”: the address is not "
            "http://, https:// or mailto:, or has a space in it. Correct the address or "
            "write it out in full"
        )
    if marker == "[^":
        return _(
            "the reader sees “[^” printed as it is: a footnote reference with a space or "
            "nothing in its label. Write it [^label] with no space, and define it"
        )
    return _(
        "the reader sees a line starting with “#” printed as it is: a heading needs a space "
        "after the # signs (“# Title”); otherwise move the # away from the start of the line"
    )


def _markdown_problems(parsed: _Source) -> tuple[list[ContentProblem], set[str]]:
    """Markers left in text tokens, and every marker the source shows on purpose (in code)."""
    problems: list[ContentProblem] = []
    seen: set[tuple[str, int]] = set()
    shown: set[str] = set()
    for token in parsed.tokens:
        if token.type in {"code_block", "fence"}:
            shown.update(m for m in (*_MARKERS, "#") if m in token.content)
    for line, child, _depth in _inline_runs(parsed.tokens):
        if child.type == "code_inline":
            shown.update(m for m in _MARKERS if m in child.content)
            continue
        if child.type != "text":
            continue
        found = [m for m in _MARKERS if m in child.content]
        shown.update(found)
        if "[^" in found and "[^" not in _FOOTNOTE_REF.sub("", child.content):
            found.remove("[^")  # reported as an undefined footnote
        for marker in found:
            if (marker, line) not in seen:
                seen.add((marker, line))
                problems.append(
                    ContentProblem("error", "markdown_left", line, _marker_message(marker))
                )
    # A text run at the start of a source line that begins with "#".
    text_lines = _text_lines(parsed)
    for index, text in enumerate(parsed.lines):
        heading = re.match(r"#{1,6}(\s|$)", text)
        if text.startswith("#") and not heading and index + 1 in text_lines:
            shown.add("#")
            problems.append(
                ContentProblem("error", "markdown_left", index + 1, _marker_message("#"))
            )
    return problems, shown


def _text_lines(parsed: _Source) -> set[int]:
    """The source lines (1-based) printed as text (in a paragraph or heading, not code)."""
    lines: set[int] = set()
    for token in parsed.tokens:
        if token.type == "inline" and token.map:
            lines.update(range(token.map[0] + 1, token.map[1] + 1))
    return lines


# --- paragraphs that will run together ------------------------------------------------


def _merged_line_problems(parsed: _Source) -> list[ContentProblem]:
    problems: list[ContentProblem] = []
    in_item = 0
    for token in parsed.tokens:
        if token.type == "list_item_open":
            in_item += 1
        elif token.type == "list_item_close":
            in_item -= 1
        if token.type != "inline" or not token.map:
            continue
        first, end = token.map[0], token.map[1]
        lines = parsed.lines[first:end]
        breaks = [
            i
            for i, child in enumerate(token.children or ())
            if child.type in {"softbreak", "hardbreak"}
        ]
        soft = sum(1 for c in token.children or () if c.type == "softbreak")
        if in_item and soft:
            # A line at the margin after a list item: it joins the item (lazy continuation).
            for offset, text in enumerate(lines[1:], start=1):
                if text and not text[0].isspace():
                    problems.append(
                        ContentProblem(
                            "warning",
                            "merged_lines",
                            first + offset + 1,
                            _(
                                "this line joins the list item above it: the reader sees it "
                                "inside that item, not as a paragraph of its own. Leave a "
                                "blank line before it"
                            ),
                        )
                    )
                    break
            continue
        if not breaks or soft + 1 < MERGED_LINES:
            continue
        suspect = sum(
            1
            for text in lines[:-1]
            if len(text.rstrip()) > LONG_LINE or text.rstrip().endswith(_SENTENCE_END)
        )
        if suspect * 2 < len(lines) - 1:
            continue  # a paragraph wrapped by hand: its breaks are meant to merge
        problems.append(
            ContentProblem(
                "warning",
                "merged_lines",
                first + 1,
                _(
                    "lines %(first)d–%(last)d are %(count)d lines separated by single line "
                    "breaks: the reader of the HTML part sees them run together as one "
                    "paragraph. Leave a blank line between paragraphs (or end a line with a "
                    "backslash to keep it on its own line)",
                    first=first + 1,
                    last=end,
                    count=end - first,
                ),
            )
        )
    return problems


# --- the parts, as the reader sees them -----------------------------------------------


class _HtmlReader(HTMLParser):
    """The text of an HTML part: all of it, its blocks outside the notes, and code apart."""

    _BLOCKS = frozenset({"p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.words: list[str] = []  # text pieces in order
        self.visible: list[str] = []  # text outside code, for markers
        self.blocks: list[list[str]] = []  # top-level blocks before the notes
        self._code = 0
        self._notes = False  # the notes come last: once they start, the letter is over
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = dict(attrs).get("class") or ""
        if tag in {"section", "hr", "ol", "div", "aside"} and "footnote" in classes:
            self._notes = True
        if tag in {"code", "pre"}:
            self._code += 1
        if tag in {"br", "p", "li", "div", "tr", "hr", "h1", "h2", "h3", "h4", "h5", "h6"}:
            self.words.append("\n")
            self.visible.append("\n")
        if tag in self._BLOCKS:
            if not self._depth and not self._notes:
                self.blocks.append([])
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in {"code", "pre"} and self._code:
            self._code -= 1
        if tag in self._BLOCKS and self._depth:
            self._depth -= 1
        if tag in self._BLOCKS or tag == "div":
            self.words.append("\n")

    def handle_data(self, data: str) -> None:
        self.words.append(data)
        if not self._code:
            self.visible.append(data)
        if self._depth and not self._notes and self.blocks:
            self.blocks[-1].append(data)


def _read_html(html: str) -> _HtmlReader:
    reader = _HtmlReader()
    reader.feed(html)
    reader.close()
    return reader


def _words(text: str) -> list[str]:
    """The words of `text` for comparing the parts: marks, numbers and addresses left out."""
    text = _BRACKETED.sub(" ", text.translate(_INVISIBLE))
    words = []
    for raw in text.split():
        word = _EDGE.sub("", raw)
        if not word or word.isdigit() or not any(c.isalnum() for c in word):
            continue
        lowered = word.casefold()
        if "://" in lowered or lowered.startswith(("mailto:", "www.")):
            continue
        words.append(lowered)
    return words


def _line_of(source_lines: Sequence[str], words: Sequence[str]) -> int:
    """The first source line that holds `words` in a row (0 if none does)."""
    wanted = " ".join(words).casefold()
    if not wanted:
        return 0
    for index, text in enumerate(source_lines):
        if wanted in " ".join(text.split()).casefold():
            return index + 1
    return 0


def _parts_problem(source_lines: Sequence[str], html: str, text: str) -> ContentProblem | None:
    html_words, text_words = _words(html), _words(text)
    shortest = min(len(html_words), len(text_words))
    index = next(
        (i for i in range(shortest) if html_words[i] != text_words[i]),
        shortest if len(html_words) != len(text_words) else -1,
    )
    if index < 0:
        return None
    before = html_words[max(0, index - CONTEXT_WORDS) : index]
    html_shown = " ".join(html_words[index : index + CONTEXT_WORDS]) or _("(the end)")
    text_shown = " ".join(text_words[index : index + CONTEXT_WORDS]) or _("(the end)")
    line = _line_of(source_lines, html_words[index : index + 2]) or _line_of(
        source_lines, text_words[index : index + 2]
    )
    return ContentProblem(
        "warning",
        "parts_differ",
        line,
        _(
            "the text part and the HTML part do not say the same: after %(before)s the HTML "
            "part reads %(html)s and the text part %(text)s. Recipients whose mail program "
            "shows the plain text read something else; simplify the Markdown there",
            before=_quote(" ".join(before)) if before else _("the start"),
            html=_quote(html_shown),
            text=_quote(text_shown),
        ),
    )


def _output_marker_problems(
    parsed: _Source, reader: _HtmlReader, text: str, shown: frozenset[str]
) -> list[ContentProblem]:
    """Markers in a part that the source does not explain (a value, a rendering fault)."""
    problems = []
    parts = ((_("the HTML part"), "".join(reader.visible)), (_("the text part"), text))
    for part, content in parts:
        lines = content.split("\n")
        for marker in (*_MARKERS, "#"):
            if marker in shown:
                continue
            if marker == "#":
                at = next((i for i, line in enumerate(lines) if line.startswith("#")), -1)
                if at < 0:
                    continue
                context = lines[at][:60]
                words = _words(context)[:2]
            else:
                position = content.find(marker)
                if position < 0:
                    continue
                context = " ".join(content[max(0, position - 30) : position + 30].split())
                # The words just before the marker find its line (the first may be cut).
                words = _words(content[max(0, position - 60) : position])[1:][-2:]
            problems.append(
                ContentProblem(
                    "error",
                    "markdown_left",
                    _line_of(parsed.lines, words),
                    _(
                        "%(part)s shows %(marker)s near %(context)s, which the reader would "
                        "see as typed. Check the text and the contact's fields printed there",
                        part=part,
                        marker=_quote(marker),
                        context=_quote(context),
                    ),
                )
            )
    return problems


# --- salutation, closing, signature ---------------------------------------------------


def _primary(language: str) -> str:
    return re.split(r"[-_]", language.strip().lower())[0]


def _starts_with(text: str, phrases: Iterable[str]) -> bool:
    folded = " ".join(text.split()).casefold()
    return any(folded.startswith(phrase) for phrase in phrases)


def _source_line(parsed: _Source, *needles: str) -> int:
    for needle in needles:
        for index, text in enumerate(parsed.lines):
            if needle and needle in text:
                return index + 1
    return 0


def _last_text_line(parsed: _Source) -> int:
    for index in range(len(parsed.lines) - 1, -1, -1):
        if parsed.lines[index].strip() and not parsed.lines[index].startswith("[^"):
            return index + 1
    return len(parsed.lines)


def _closing_problems(
    letter: LetterContent, parsed: _Source, reader: _HtmlReader
) -> list[ContentProblem]:
    blocks = [" ".join("".join(block).split()) for block in reader.blocks]
    closing = " ".join(letter.closing.split())
    phrases = _CLOSINGS.get(_primary(letter.language), ()) + _CLOSINGS["en"]
    at = -1
    for index, block in enumerate(blocks):
        if (closing and block.startswith(closing)) or _starts_with(block, phrases):
            at = index
    if at < 0:
        return [
            ContentProblem(
                "error",
                "no_closing",
                _last_text_line(parsed),
                _(
                    "the letter has no closing: it ends without “Yours sincerely,” or the "
                    "like. Put {{ closing }} (or a closing of your own) after the last "
                    "paragraph"
                ),
            )
        ]
    if any(line.strip() for line in letter.signatory_lines):
        return []
    closing_block = blocks[at]
    rest = [block for block in blocks[at + 1 :] if any(c.isalpha() for c in block)]
    # A closing paragraph can carry the name on its next line ("Kind regards,\nAnna Smith").
    next_lines = "".join(reader.blocks[at]).strip().split("\n")[1:]
    if rest or any(c.isalpha() for line in next_lines for c in line):
        return []
    line = _source_line(parsed, "{{ closing }}", "{{closing}}", closing)
    return [
        ContentProblem(
            "error",
            "no_signature",
            line or _last_text_line(parsed),
            _(
                "the letter is not signed: after the closing %(closing)s the reader finds "
                "no signatory and no name. Add signatories to the statement, or write the "
                "signer's name after the closing",
                closing=_quote(closing_block[:80]),
            ),
        )
    ]


def salutation_problem(
    source: str, html: str, salutation: str, language: str, *, uses_salutation: bool
) -> ContentProblem | None:
    """An empty salutation in one recipient's letter (per recipient: it depends on them).

    `uses_salutation` says the body prints {{ salutation }}; then an empty value is the
    problem. Otherwise the first paragraph is read: a greeting with no name after it
    ("Dear ,") is one too.
    """
    lines = source.split("\n")
    if uses_salutation:
        if salutation.strip():
            return None
        line = _source_line(_Source(lines, []), "{{ salutation }}", "{{salutation}}")
        return ContentProblem(
            "error",
            "empty_salutation",
            line or 1,
            _(
                "the salutation is empty for this recipient: the letter starts without "
                "“Dear …”. Add a salutation rule for them, or give the contact their own "
                "salutation"
            ),
        )
    end = html.find("</p>")
    if end < 0:
        return None
    reader = _read_html(html[: end + 4])
    first = " ".join("".join(reader.words).split())
    greetings = _GREETINGS.get(_primary(language), ()) + _GREETINGS["en"]
    for greeting in greetings:
        folded = first.casefold()
        if folded.startswith(greeting) and not any(c.isalpha() for c in folded[len(greeting) :]):
            return ContentProblem(
                "error",
                "empty_salutation",
                _line_of(lines, [greeting]) or 1,
                _(
                    "the salutation reads %(text)s: the name it prints is empty for this "
                    "recipient. Use {{ salutation }}, or fill in the contact's name",
                    text=_quote(first),
                ),
            )
    return None


# --- all together ---------------------------------------------------------------------


def subject_problem(subject: str) -> ContentProblem | None:
    if len(subject) <= MAX_SUBJECT:
        return None
    return ContentProblem(
        "warning",
        "long_subject",
        0,
        ngettext(
            "the subject is %(num)d character long; mail programs cut it well before the "
            "end, so the reader sees only its beginning. Keep it to %(limit)d characters",
            "the subject is %(num)d characters long; mail programs cut it well before the "
            "end, so the reader sees only its beginning. Keep it to %(limit)d characters",
            len(subject),
            limit=MAX_SUBJECT,
        ),
    )


@dataclass(frozen=True)
class _Analysis:
    parsed: _Source
    problems: tuple[ContentProblem, ...]
    shown: frozenset[str]  # the markers the source prints as typed (in code, or by mistake)


@lru_cache(maxsize=64)
def _analyse(source: str) -> _Analysis:
    parsed = _read(source)
    markdown, shown = _markdown_problems(parsed)
    problems = (*_footnote_problems(parsed), *markdown, *_merged_line_problems(parsed))
    return _Analysis(parsed, problems, frozenset(shown))


def source_problems(source: str) -> tuple[ContentProblem, ...]:
    """What is wrong in the Markdown source itself, whoever receives it."""
    return _analyse(source).problems


def check_content(letter: LetterContent) -> list[ContentProblem]:
    """Everything a reader would see wrong in this letter, errors first, by line.

    Call it once per (statement, language): nothing it looks at but the closing depends on
    the recipient.
    """
    analysis = _analyse(letter.source)
    parsed = analysis.parsed
    problems = list(analysis.problems)
    reader = _read_html(letter.html)
    problems += _output_marker_problems(parsed, reader, letter.text, analysis.shown)
    problems += _closing_problems(letter, parsed, reader)
    different = _parts_problem(parsed.lines, "".join(reader.words), letter.text)
    if different is not None:
        problems.append(different)
    long_subject = subject_problem(letter.subject)
    if long_subject is not None:
        problems.append(long_subject)
    return sorted(problems, key=lambda p: (p.severity != "error", p.line))
