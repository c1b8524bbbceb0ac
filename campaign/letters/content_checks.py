"""What a reader would see wrong in a letter: the pre-send check's reading of the text itself.

Pure functions over one rendered letter (the statement's Markdown source of that language, the
HTML part, the text part, the subject) that return problems with the source line they come
from. Nothing here knows about contacts or the database; `services/presend.py` calls
`check_content` once per distinct rendered body of a (statement, language) and
`salutation_problem` and `value_problems` per recipient.

The source is read with markdown-it, like the renderer, but with footnote definitions left in
place (`move_to_end=False`) so that each keeps its line, and without the `text_join` rule, so
that what the author escaped (`\\*\\*`) stays apart from what they typed: a `**` in a text
token is one the author typed and markdown-it did not convert. Every scan is linear in the
size of the text; no pattern can backtrack over more than the run it starts (decision 0039).

Messages are lazy strings: the source's reading is cached across requests and languages, and
each reader gets the words in their own language when the message is shown (or stored).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from typing import TypeAlias

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from flask_babel.speaklater import LazyString
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin

from campaign.letters.markdown import ALLOWED_LINK_SCHEMES, warmed

Text: TypeAlias = str | LazyString

# A subject longer than this is cut in most mail programs' lists and on phones.
MAX_SUBJECT = 120
# A paragraph of at least this many source lines joined by single line breaks is suspect...
MERGED_LINES = 3
# ...when most of its breaks follow the end of a sentence or a line this long (pasted text).
LONG_LINE = 100
# Words shown either side of the first difference between the parts.
CONTEXT_WORDS = 4
# A paragraph after a closing formula of more words than this (lines longer than
# SIGNATURE_WORDS) is more letter: the formula was a sentence mid-letter, not the closing.
LONG_PARAGRAPH = 40
SIGNATURE_WORDS = 8
# `line` of a problem in the subject; NO_LINE: no single line of the text.
SUBJECT_LINE = -1
NO_LINE = 0

_SENTENCE_END = tuple(".!?:;…»”\"'’)")
# No pattern below can run past the next bracket, brace, angle or line end: linear scans.
_FOOTNOTE_REF = re.compile(r"\[\^([^\[\]\s]*)\]")
_BRACKETED = re.compile(r"\[[^\[\]\s]{1,20}\]")
_INVISIBLE = str.maketrans("", "", "\u2060\u200b\u200c\u200d\ufeff\u00ad")
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}|\{%[^{}]*%\}")
_JINJA_BRANCH = re.compile(r"\{%-?\s*(if|elif|else|endif)\b[^{}]*%\}")
_POSTSCRIPT = re.compile(r"(?:p\.?\s?-?s\.?|n\.\s?b\.|п\.\s?с\.|p\.\s?p\.\s?s\.)(?:\s|:|$)")
# Markdown the author typed and markdown-it printed as it is ("kind": pattern).
_LEFT = {
    # Bold that does not open or close: the stars touch a word on one side only ("10**6"
    # and "a ** b" are arithmetic and prose, not emphasis).
    "**": re.compile(r"(?<![\w*])\*\*(?=[^\W_])|(?<=[^\W_])\*\*(?![\w*])"),
    "__": re.compile(r"(?<!\w)__(?=[^\W_])|(?<=[^\W_])__(?!\w)"),
    # A link whose address markdown-it refused: "[text](" (a bare "a](b" is no link).
    "](": re.compile(r"\[[^\[\]\n]*\]\("),
    "[^": re.compile(r"\[\^"),
}
# A heading without its space: two to six "#" and a letter ("#MeToo" is a hashtag).
_HEADING_LEFT = re.compile(r"#{2,6}[^#\s]")
# Shown as typed, worth a look: raw HTML (letters show it as text) and a reference link
# ("[the report][hrw]") without its "[hrw]: address" definition.
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>\n]*)?/?>")
_REFERENCE = re.compile(r"\[(?!\^)[^\[\]\n]+\]\[(?!\^)[^\[\]\n]*\]")

# Closing formulas, beyond the closings of the salutation rules (which are data: the
# built-in table and the admin's rules, passed in as LetterContent.closings). Matched at the
# start of a line, case-folded, apostrophes straightened, whatever the letter's language.
CLOSING_PHRASES = (
    # English
    "yours sincerely",
    "yours faithfully",
    "yours truly",
    "yours",
    "sincerely",
    "kind regards",
    "best regards",
    "warm regards",
    "warmest regards",
    "regards",
    "respectfully",
    "with respect",
    "with best wishes",
    "best wishes",
    "with thanks",
    "many thanks",
    "thank you for your attention",
    "thank you for your consideration",
    "in solidarity",
    "please accept",
    "accept, excellency",
    "we, the undersigned",
    "the undersigned",
    "on behalf of",
    "signed:",
    # French
    "veuillez agréer",
    "veuillez recevoir",
    "veuillez accepter",
    "je vous prie d'agréer",
    "je vous prie de bien vouloir agréer",
    "je vous prie de recevoir",
    "nous vous prions d'agréer",
    "nous vous prions de bien vouloir agréer",
    "nous vous prions de recevoir",
    "recevez",
    "agréez",
    "dans l'attente",
    "en vous remerciant",
    "avec nos remerciements",
    "cordialement",
    "bien cordialement",
    "très cordialement",
    "respectueusement",
    "bien à vous",
    "salutations",
    "sincères salutations",
    "meilleures salutations",
    "avec mes salutations",
    "avec nos salutations",
    "amicalement",
    "nous, soussignés",
    "nous, soussignées",
    "les organisations soussignées",
    "les soussignés",
    # Russian
    "с уважением",
    "с глубоким уважением",
    "с искренним уважением",
    "искренне",
    "с наилучшими пожеланиями",
    "с надеждой",
    "всего доброго",
    "всего наилучшего",
    "с благодарностью",
    "заранее благодарим",
    "заранее благодарю",
    "примите уверения",
    "пользуясь случаем",
    "мы, нижеподписавшиеся",
    "нижеподписавшиеся",
)
# Words of a closing formula wherever they stand in the last paragraph before the signer
# ("Restant à votre disposition, nous vous prions d'agréer…", "Надеемся на Ваше
# понимание."): matched at the start of a word, case-folded, as stems.
CLOSING_WORDS = (
    # English
    "sincerely",
    "regards",
    "faithfully",
    "respectfully",
    "signed",
    "signatories",
    "signatures",
    "thank you",
    "many thanks",
    "look forward",
    "best wishes",
    "yours",
    # French
    "agréer",
    "agréez",
    "salutations",
    "considération",
    "sentiments",
    "sincèrement",
    "cordialement",
    "respectueusement",
    "remerci",
    "signataires",
    "bien à vous",
    "amitiés",
    # Russian
    "уважени",
    "уважающ",
    "почтени",
    "благодар",
    "спасибо",
    "признательн",
    "надеемся на ваш",
    "надеюсь на ваш",
    "надеемся на понимание",
    "пожелани",
    "искренне",
    "подпис",
)
_CLOSING_WORD = re.compile(
    r"(?<!\w)(?:" + "|".join(re.escape(word) for word in CLOSING_WORDS) + ")"
)
# A signer's line: a name, a title, an organisation. At most this many words, and no
# sentence end ("We ask you to act." is the body; "Marie Dupont, présidente" a signer).
SIGNER_LINE_WORDS = 12


@dataclass(frozen=True)
class ContentProblem:
    """One thing a reader would see wrong, with the source line it comes from (1-based;
    SUBJECT_LINE for the subject, NO_LINE when no single line of the text holds it)."""

    severity: str  # "error" (stops the launch) or "warning"
    code: str
    line: int
    message: Text  # lazy: read in the reader's language


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
    # The closings the salutation rules know in this language (built-in and admin rules,
    # "{salutation}" and such left in): formulas a letter may close with.
    closings: tuple[str, ...] = ()
    # What the recipient's own fields printed (names, organisation, salutation): a marker in
    # them is the recipient's problem (`value_problems`), not the text's.
    values: tuple[str, ...] = ()


# --- the source, parsed once -----------------------------------------------------------


def _validate_link(url: str) -> bool:
    return url.strip().lower().startswith(ALLOWED_LINK_SCHEMES)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.use(footnote_plugin, move_to_end=False)
    md.disable("image")
    # Escaped characters stay `text_special` tokens: what the author escaped is not
    # Markdown left unconverted.
    md.disable("text_join")
    md.validateLink = _validate_link  # type: ignore[method-assign]
    return warmed(md)  # shared by threads: see markdown.warmed


@dataclass
class _Source:
    lines: list[str]
    tokens: list[Token]


def _read(source: str) -> _Source:
    return _Source(source.split("\n"), _parser().parse(source, {}))


def _quote(text: str) -> LazyString:
    """`text` in the reader's language's quotation marks (“…”, « … », «…»)."""
    return _l("“%(value)s”", value=text)


# --- footnotes ------------------------------------------------------------------------


def _inline_runs(tokens: Sequence[Token]) -> Iterable[tuple[int, Token]]:
    """(source line, child token) for every inline child."""
    for token in tokens:
        if token.type == "inline" and token.map:
            line = token.map[0] + 1
            for child in token.children or ():
                yield line, child
                if child.type in {"softbreak", "hardbreak"}:
                    line += 1


def _branches(lines: Sequence[str]) -> list[tuple[tuple[int, int], ...]]:
    """For each source line, the template branches it sits in: ((if number, branch), ...).

    Two lines in different branches of one `{% if %}` are never printed in the same letter.
    """
    stack: list[tuple[int, int]] = []
    count = 0
    paths: list[tuple[tuple[int, int], ...]] = []

    def apply(kind: str) -> None:
        nonlocal count
        if kind == "if":
            count += 1
            stack.append((count, 0))
        elif kind in {"elif", "else"} and stack:
            stack[-1] = (stack[-1][0], stack[-1][1] + 1)
        elif kind == "endif" and stack:
            stack.pop()

    for text in lines:
        rest = text.lstrip()
        leading = _JINJA_BRANCH.match(rest)
        while leading:  # tags that open the line apply to it
            apply(leading.group(1))
            rest = rest[leading.end() :].lstrip()
            leading = _JINJA_BRANCH.match(rest)
        paths.append(tuple(stack))
        for tag in _JINJA_BRANCH.finditer(rest):
            apply(tag.group(1))
    return paths


def _exclusive(a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]) -> bool:
    branches = dict(a)
    return any(number in branches and branches[number] != branch for number, branch in b)


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
    for line, child in _inline_runs(parsed.tokens):
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
                    _l(
                        "the reader sees %(marker)s printed as it is: no footnote %(label)s is "
                        "defined. Add a line “[^%(label)s]: …” with its text after the "
                        "letter, or remove the reference",
                        marker=_quote(match.group(0)),
                        label=label,
                    ),
                )
            )
    paths = _branches(parsed.lines)
    for label, lines in definitions.items():
        # Definitions in different branches of an {% if %} never meet in one letter.
        clashing = [
            line
            for line in lines
            if any(
                other != line and not _exclusive(paths[line - 1], paths[other - 1])
                for other in lines
            )
        ]
        if len(clashing) > 1:
            problems.append(
                ContentProblem(
                    "error",
                    "footnote_duplicate",
                    clashing[0],
                    _l(
                        "footnote %(marker)s is defined more than once (lines %(lines)s); the "
                        "reader sees only the last text (line %(last)d). Keep one definition "
                        "and give the other note its own label",
                        marker=_quote(f"[^{label}]"),
                        lines=", ".join(str(n) for n in clashing),
                        last=clashing[-1],
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
                    _l(
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
                    _l(
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


def _left_markers(text: str) -> list[str]:
    """The kinds of Markdown `text` (as printed) shows unconverted, in a fixed order."""
    found = [kind for kind, pattern in _LEFT.items() if pattern.search(text)]
    if any(_HEADING_LEFT.match(line) for line in text.split("\n") if line.startswith("##")):
        found.append("#")
    return found


def _marker_message(marker: str) -> LazyString:
    if marker in {"**", "__"}:
        return _l(
            "the reader sees %(marker)s printed as it is: bold text that does not open or "
            "close (a space inside the marks, or a missing pair). Write %(example)s with no "
            "space inside the marks, or remove them",
            marker=_quote(marker),
            example=f"{marker}words{marker}",
        )
    if marker == "](":
        return _l(
            "the reader sees a link as Markdown, “[text](address)”: the address is not "
            "http://, https:// or mailto:, or has a space in it. Correct the address or "
            "write it out in full"
        )
    if marker == "[^":
        return _l(
            "the reader sees “[^” printed as it is: a footnote reference with a space or "
            "nothing in its label. Write it [^label] with no space, and define it"
        )
    return _l(
        "the reader sees a line starting with “##” printed as it is: a heading needs a space "
        "after the # signs (“## Title”)"
    )


def _markdown_problems(parsed: _Source) -> tuple[list[ContentProblem], set[str]]:
    """Markers the author typed that markdown-it left as text, and every marker kind the
    source itself prints (typed, escaped or in code): the parts may show those."""
    problems: list[ContentProblem] = []
    seen: set[tuple[str, int]] = set()
    shown: set[str] = set()

    def report(severity: str, code: str, line: int, kind: str, message: LazyString) -> None:
        if (kind, line) not in seen:
            seen.add((kind, line))
            problems.append(ContentProblem(severity, code, line, message))

    for token in parsed.tokens:
        if token.type in {"code_block", "fence"}:
            shown.update(_left_markers(token.content))
        elif token.type == "inline" and token.children:
            shown.update(_left_markers("".join(c.content or "\n" for c in token.children)))
    for line, child in _inline_runs(parsed.tokens):
        if child.type != "text":
            continue
        content = child.content
        found = _left_markers(content)
        if "[^" in found and "[^" not in _FOOTNOTE_REF.sub("", content):
            found.remove("[^")  # reported as an undefined footnote
        found = [kind for kind in found if kind != "#"]  # by source line, below
        for kind in found:
            report("error", "markdown_left", line, kind, _marker_message(kind))
        if "<" in content and (tag := _HTML_TAG.search(content)):
            report(
                "warning",
                "html_shown",
                line,
                "<",
                _l(
                    "the reader sees %(tag)s printed as it is: letters show HTML as typed. "
                    "Use Markdown instead (**bold**, *italics*, [text](address))",
                    tag=_quote(tag.group(0)),
                ),
            )
        if "][" in content and (reference := _REFERENCE.search(content)):
            report(
                "warning",
                "reference_undefined",
                line,
                "][",
                _l(
                    "the reader sees %(link)s printed as it is: the link's address is never "
                    "given. Add a line “[label]: https://…” after the letter, or write the "
                    "link as [text](address)",
                    link=_quote(reference.group(0)),
                ),
            )
    text_lines = _text_lines(parsed)
    for index, text in enumerate(parsed.lines):
        if text.startswith("##") and _HEADING_LEFT.match(text) and index + 1 in text_lines:
            shown.add("#")
            report("error", "markdown_left", index + 1, "#", _marker_message("#"))
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
                            _l(
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
                _l(
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
        self.block_tags: list[str] = []  # the tag of each block ("p", "li", ...)
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
        if tag == "br" and self._depth and not self._notes and self.blocks:
            self.blocks[-1].append("\n")
        if tag in self._BLOCKS:
            if not self._depth and not self._notes:
                self.blocks.append([])
                self.block_tags.append(tag)
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


def _strip_marks(word: str) -> str:
    """`word` without the marks at either end (a linear scan, not a backtracking pattern)."""
    start, end = 0, len(word)
    while start < end and not (word[start].isalnum() or word[start] == "_"):
        start += 1
    while end > start and not (word[end - 1].isalnum() or word[end - 1] == "_"):
        end -= 1
    return word[start:end]


def _words(text: str) -> list[str]:
    """The words of `text` for comparing the parts: marks, numbers and addresses left out."""
    text = _BRACKETED.sub(" ", text.translate(_INVISIBLE))
    words = []
    for raw in text.split():
        word = _strip_marks(raw)
        if not word or word.isdigit() or not any(c.isalnum() for c in word):
            continue
        lowered = word.casefold()
        if "://" in lowered or lowered.startswith(("mailto:", "www.")):
            continue
        if "@" in lowered and "." in lowered.rpartition("@")[2]:
            continue  # an address: the text part spells out what a mailto: link hides
        words.append(lowered)
    return words


def _line_of(source_lines: Sequence[str], words: Sequence[str]) -> int:
    """The first source line that holds `words` in a row (NO_LINE if none does)."""
    wanted = " ".join(words).casefold()
    if not wanted:
        return NO_LINE
    for index, text in enumerate(source_lines):
        if wanted in " ".join(text.split()).casefold():
            return index + 1
    return NO_LINE


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
    html_shown = " ".join(html_words[index : index + CONTEXT_WORDS])
    text_shown = " ".join(text_words[index : index + CONTEXT_WORDS])
    line = _line_of(source_lines, html_words[index : index + 2]) or _line_of(
        source_lines, text_words[index : index + 2]
    )
    the_end = _l("(the end)")
    return ContentProblem(
        "warning",
        "parts_differ",
        line,
        _l(
            "the text part and the HTML part do not say the same: after %(before)s the HTML "
            "part reads %(html)s and the text part %(text)s. Recipients whose mail program "
            "shows the plain text read something else; simplify the Markdown there",
            before=_quote(" ".join(before)) if before else _l("the start"),
            html=_quote(html_shown) if html_shown else the_end,
            text=_quote(text_shown) if text_shown else the_end,
        ),
    )


def _without(content: str, values: Sequence[str]) -> str:
    for value in values:
        content = content.replace(value, " ")
    return content


def _output_marker_problems(
    parsed: _Source, reader: _HtmlReader, text: str, shown: frozenset[str], values: Sequence[str]
) -> list[ContentProblem]:
    """Markers in a part that neither the source nor the recipient's values explain."""
    problems = []
    parts = ((_l("the HTML part"), "".join(reader.visible)), (_l("the text part"), text))
    for part, content in parts:
        content = _without(content, values)
        lines = content.split("\n")
        for marker in _left_markers(content):
            if marker in shown:
                continue
            if marker == "#":
                at = next(i for i, line in enumerate(lines) if _HEADING_LEFT.match(line))
                context = lines[at][:60]
                words = _words(context)[:2]
            else:
                found = _LEFT[marker].search(content)
                position = found.start() if found else 0
                context = " ".join(content[max(0, position - 30) : position + 30].split())
                # The words just before the marker find its line (the first may be cut).
                words = _words(content[max(0, position - 60) : position])[1:][-2:]
            problems.append(
                ContentProblem(
                    "error",
                    "markdown_left",
                    _line_of(parsed.lines, words),
                    _l(
                        "%(part)s shows %(marker)s near %(context)s, which the reader would "
                        "see as typed. Check the text and the contact's fields printed there",
                        part=part,
                        marker=_quote(marker),
                        context=_quote(context),
                    ),
                )
            )
    return problems


def value_problems(values: Iterable[str]) -> list[ContentProblem]:
    """Markdown in what a recipient's own fields print: that recipient's problem.

    Values are printed as typed (escaped during the merge), so "**Org**" reads with its
    stars; the fix is in the contact, not in the text.
    """
    problems = []
    for value in values:
        for marker in _left_markers(value.strip()):
            problems.append(
                ContentProblem(
                    "error",
                    "markdown_left",
                    NO_LINE,
                    _l(
                        "this recipient's letter prints %(value)s, from the contact's fields, "
                        "with %(marker)s as typed. Correct the contact's field",
                        value=_quote(value.strip()[:80]),
                        marker=_quote(marker),
                    ),
                )
            )
            break
    return problems


# --- salutation, closing, signature ---------------------------------------------------


def _folded(text: str) -> str:
    """`text` for comparing formulas: case-folded, one kind of space and apostrophe."""
    text = text.replace("\u2019", "'").replace("\u02bc", "'")
    return " ".join(text.translate(_INVISIBLE).split()).casefold()


def _formula(text: str) -> str:
    """A rule's closing as a phrase to find: its words up to the first placeholder."""
    fixed = _folded(text.split("{", 1)[0])
    return fixed.rstrip(" ,;:.!")


def _closing_phrases(letter: LetterContent) -> tuple[str, ...]:
    phrases = {_formula(text) for text in (*letter.closings, letter.closing)}
    phrases.update(CLOSING_PHRASES)
    phrases.discard("")
    return tuple(sorted(phrases, key=len, reverse=True))


def _opens_with(line: str, phrases: Sequence[str]) -> bool:
    for phrase in phrases:
        if line.startswith(phrase):
            rest = line[len(phrase) : len(phrase) + 1]
            if not rest or not rest.isalpha():
                return True
    return False


def _source_line(parsed: _Source, *needles: str) -> int:
    for needle in needles:
        for index, text in enumerate(parsed.lines):
            if needle and needle in text:
                return index + 1
    return NO_LINE


def _last_text_line(parsed: _Source) -> int:
    for index in range(len(parsed.lines) - 1, -1, -1):
        if parsed.lines[index].strip() and not parsed.lines[index].startswith("[^"):
            return index + 1
    return len(parsed.lines)


def _is_more_letter(lines: Sequence[str]) -> bool:
    """Whether a block after a closing formula is letter text rather than a signature."""
    words = sum(len(line.split()) for line in lines)
    return words > LONG_PARAGRAPH and any(len(line.split()) > SIGNATURE_WORDS for line in lines)


def _closing_problems(
    letter: LetterContent, parsed: _Source, reader: _HtmlReader
) -> list[ContentProblem]:
    blocks = [
        [" ".join(line.split()) for line in "".join(block).split("\n") if line.strip()]
        for block in reader.blocks
    ]
    phrases = _closing_phrases(letter)
    signed_by_block = any(line.strip() for line in letter.signatory_lines)
    # The last line that opens with a closing formula, and is not followed by more letter.
    at: tuple[int, int] | None = None
    for index, lines in enumerate(blocks):
        for number, line in enumerate(lines):
            if _opens_with(_folded(line), phrases):
                at = (index, number)
    signatories = {_folded(line) for line in letter.signatory_lines if line.strip()}
    if at is not None and any(
        _is_more_letter(lines) and not _postscript(lines) and not _signed(lines, signatories)
        for lines in blocks[at[0] + 1 :]
    ):
        at = None  # "Please accept our request…" mid-letter: the letter goes on
    if at is not None and reader.block_tags[at[0]] == "li":
        # The closing is inside the last list item (no blank line before it).
        formula = blocks[at[0]][at[1]]
        return [
            ContentProblem(
                "error",
                "no_closing",
                _line_of(parsed.lines, _words(formula)[:3]) or _last_text_line(parsed),
                _l(
                    "the closing %(closing)s is part of the list item above it: the reader "
                    "sees it inside that item, not as the letter's closing. Leave a blank "
                    "line before it",
                    closing=_quote(formula[:80]),
                ),
            )
        ]
    tail = _signer_tail(blocks, reader.block_tags)
    if at is None:
        # A formula inside the last paragraph ("Restant à votre disposition, nous vous
        # prions d'agréer…"), or in the lines of the signer's block ("Signed,").
        at = _closing_by_words(blocks, reader.block_tags, tail)
    if at is None:
        if signed_by_block:
            return [
                ContentProblem(
                    "warning",
                    "no_closing_formula",
                    _last_text_line(parsed),
                    _l(
                        "the letter ends without a closing formula (“Yours sincerely,” or "
                        "the like): the signatories follow the last paragraph directly. Put "
                        "{{ closing }} (or a closing of your own) after it if the letter "
                        "needs one"
                    ),
                )
            ]
        if tail is not None:
            # Signed by the name that ends it: a missing formula is a matter of style.
            return [
                ContentProblem(
                    "warning",
                    "no_closing_formula",
                    _line_of(parsed.lines, _words(tail[2])[:3]) or _last_text_line(parsed),
                    _l(
                        "the letter ends without a closing formula (“Yours sincerely,” or "
                        "the like): the signer %(name)s follows the last paragraph directly. "
                        "Put {{ closing }} (or a closing of your own) before the name if the "
                        "letter needs one",
                        name=_quote(tail[2][:80]),
                    ),
                )
            ]
        return [
            ContentProblem(
                "error",
                "no_closing",
                _last_text_line(parsed),
                _l(
                    "the letter has no closing: it ends without “Yours sincerely,” or the "
                    "like, and no signatories follow. Put {{ closing }} (or a closing of "
                    "your own) after the last paragraph"
                ),
            )
        ]
    if signed_by_block:
        return []
    index, number = at
    after = blocks[index][number + 1 :] + [
        text for lines in blocks[index + 1 :] if not _postscript(lines) for text in lines
    ]
    if any(c.isalpha() for text in after for c in text):
        return []
    formula = blocks[index][number]
    printed_at = _source_line(parsed, "{{ closing }}", "{{closing}}", letter.closing.strip())
    return [
        ContentProblem(
            "error",
            "no_signature",
            printed_at or _line_of(parsed.lines, _words(formula)[:3]) or _last_text_line(parsed),
            _l(
                "the letter is not signed: after the closing %(closing)s the reader finds "
                "no signatory and no name. Add signatories to the statement, or write the "
                "signer's name after the closing",
                closing=_quote(formula[:80]),
            ),
        )
    ]


def _signer_line(line: str, *, last: bool) -> bool:
    """Whether `line` reads as part of a signature: a name, a title, an organisation, or a
    heading over them ("Signatories:") — few words and no sentence end."""
    words = line.split()
    if not words or len(words) > SIGNER_LINE_WORDS or not any(c.isalpha() for c in line):
        return False
    end = line.rstrip("»”’\"')] ")
    if not end or end[-1] in "!?…;":
        return False
    if end[-1] == ":":
        return not last  # a heading needs the names under it
    if end[-1] == ".":
        # "Jr.", "Ltd.", "И." end a name; any other full stop ends a sentence.
        word = _strip_marks(end.split()[-1])
        return 0 < len(word) <= 3 and word[0].isupper()
    return True


def _body_end(blocks: Sequence[Sequence[str]]) -> int:
    """The number of blocks before the trailing postscripts (which neither sign nor close)."""
    end = len(blocks)
    while end > 0 and _postscript(blocks[end - 1]):
        end -= 1
    return end


def _signer_tail(
    blocks: Sequence[Sequence[str]], tags: Sequence[str]
) -> tuple[int, int, str] | None:
    """Where the signer's lines that end the letter start (block, line) and the first line
    of the last block (the name shown); None when the letter ends with a body paragraph.

    The first block (the salutation) never signs: something must come before the name.
    """
    end = _body_end(blocks)
    start: tuple[int, int] | None = None
    for index in range(end - 1, 0, -1):
        if tags[index] != "p":
            break
        lines = blocks[index]
        number = len(lines) - 1
        while number >= 0 and _signer_line(lines[number], last=start is None):
            start = (index, number)
            number -= 1
        if number >= 0:
            break
    if start is None:
        return None
    shown = blocks[end - 1][start[1] if start[0] == end - 1 else 0]
    return start[0], start[1], shown


def _closing_by_words(
    blocks: Sequence[Sequence[str]], tags: Sequence[str], tail: tuple[int, int, str] | None
) -> tuple[int, int] | None:
    """The first line with a closing word in the last paragraph before the signer (or the
    letter's last paragraph) or in the signer's lines; None if there is none."""
    end = _body_end(blocks)
    zone: list[tuple[int, int]] = []
    if tail is None:
        if end > 1 and tags[end - 1] == "p":
            zone = [(end - 1, n) for n in range(len(blocks[end - 1]))]
    else:
        index, number, _shown = tail
        if number > 0:
            zone = [(index, n) for n in range(number)]
        elif index > 1 and tags[index - 1] == "p":
            zone = [(index - 1, n) for n in range(len(blocks[index - 1]))]
        zone += [(index, n) for n in range(number, len(blocks[index]))]
        zone += [(i, n) for i in range(index + 1, end) for n in range(len(blocks[i]))]
    for index, number in zone:
        if _CLOSING_WORD.search(_folded(blocks[index][number])):
            return index, number
    return None


def _signed(lines: Sequence[str], signatories: set[str]) -> bool:
    """Whether a block is the statement's signatory block (long lines are no more letter)."""
    return bool(lines) and all(_folded(line) in signatories for line in lines)


def _postscript(lines: Sequence[str]) -> bool:
    return bool(lines) and bool(_POSTSCRIPT.match(_folded(lines[0])))


def _source_paragraphs(source: str) -> Iterable[tuple[int, str]]:
    """(first line, text) of the source's paragraphs, split at blank lines."""
    start, collected = 0, list[str]()
    for index, text in enumerate(source.split("\n")):
        if text.strip():
            if not collected:
                start = index + 1
            collected.append(text)
        elif collected:
            yield start, "\n".join(collected)
            collected = []
    if collected:
        yield start, "\n".join(collected)


def _letters(text: str) -> str:
    return "".join(c for c in text if c.isalnum()).casefold()


def salutation_problem(
    source: str, html: str, salutation: str, language: str, *, uses_salutation: bool
) -> ContentProblem | None:
    """An empty salutation in one recipient's letter (per recipient: it depends on them).

    `uses_salutation` says the body prints {{ salutation }}; then a value with no letter in
    it is the problem. Otherwise the first paragraph is read: when it is a paragraph of the
    source that prints values and it reads only its own words ("Dear {{ name }}," printed
    "Dear ,"), the value was empty. A greeting written out ("Madame,") is a salutation.
    """
    if uses_salutation:
        if any(c.isalnum() for c in salutation):
            return None
        line = _source_line(_Source(source.split("\n"), []), "{{ salutation }}", "{{salutation}}")
        return ContentProblem(
            "error",
            "empty_salutation",
            line or 1,
            _l(
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
    if len(first.split()) > SIGNATURE_WORDS:
        return None
    printed = _letters(first)
    for number, (line, paragraph) in enumerate(_source_paragraphs(source)):
        if number >= 3:
            break
        if "{{" in paragraph and _letters(_TEMPLATE.sub(" ", paragraph)) == printed:
            return ContentProblem(
                "error",
                "empty_salutation",
                line,
                _l(
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
        SUBJECT_LINE,
        lazy_ngettext(
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
    problems: tuple[ContentProblem, ...]  # their messages lazy: no language is cached
    shown: frozenset[str]  # the marker kinds the source prints (typed, escaped, in code)


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

    Call it once per distinct rendered body of a (statement, language): the source is read
    once (cached), the parts, the closing and the signature are read on the body given.
    """
    analysis = _analyse(letter.source)
    parsed = analysis.parsed
    problems = list(analysis.problems)
    reader = _read_html(letter.html)
    values = sorted({v for v in letter.values if v.strip()}, key=len, reverse=True)
    problems += _output_marker_problems(parsed, reader, letter.text, analysis.shown, values)
    problems += _closing_problems(letter, parsed, reader)
    different = _parts_problem(parsed.lines, "".join(reader.words), letter.text)
    if different is not None:
        problems.append(different)
    long_subject = subject_problem(letter.subject)
    if long_subject is not None:
        problems.append(long_subject)
    return sorted(problems, key=lambda p: (p.severity != "error", p.line))
