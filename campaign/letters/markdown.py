"""Statement bodies: Markdown merged in the sandbox, then turned into the HTML and text parts.

Order: Jinja merge first, Markdown second. Every value a body prints with {{ }} is
escaped for Markdown during the merge (sandbox.markdown_literal), so a contact named
``*bold* <b>x</b> [link](javascript:alert(1))`` reads exactly so in both parts: it can
neither add emphasis or links nor write HTML. Raw HTML in the author's own Markdown is
shown as text, links go to http, https and mailto only, and images are not rendered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode
from mdit_py_plugins.footnote import footnote_plugin

from campaign.letters.sandbox import (
    DEFAULT_LIMITS,
    PLACEHOLDER_OPEN,
    MarkdownText,
    Placeholder,
    RenderLimits,
    markdown_literal,
    render,
)
from campaign.letters.typography import typeset_tokens

__all__ = [
    "LetterBody",
    "MarkdownText",
    "markdown_literal",
    "markdown_to_html",
    "markdown_to_text",
    "render_body",
]

ALLOWED_LINK_SCHEMES = ("http://", "https://", "mailto:")


@dataclasses.dataclass(frozen=True)
class LetterBody:
    html: str
    text: str


def _validate_link(url: str) -> bool:
    return url.strip().lower().startswith(ALLOWED_LINK_SCHEMES)


def warmed(md: MarkdownIt) -> MarkdownIt:
    """`md` with its rule lists built, ready to be shared by threads.

    markdown-it builds each ruler's lists on the first parse that needs them: two threads
    making that first parse at once (gthread workers) can read a list the other is still
    building, and render wrong HTML (which the letter cache then keeps) or raise "none of
    the block rules matched". Built here, before anyone else holds the parser, the lists
    are only read afterwards; a parse keeps its own state."""
    for ruler in (md.core.ruler, md.block.ruler, md.inline.ruler, md.inline.ruler2):
        ruler.getRules("")  # builds every chain's list at once
    return md


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.use(footnote_plugin)
    # Footnotes keep the author's numbers, without back-link arrows (decision 0040).
    md.add_render_rule("footnote_ref", _render_footnote_ref)
    md.add_render_rule("footnote_open", _render_footnote_open)
    md.add_render_rule("footnote_anchor", lambda *args: "")
    # After footnote_tail: every note's number decided once, for both parts.
    md.core.ruler.push("footnote_numbers", _number_footnotes)
    # Remote images in a letter are tracking pixels at best; attachments carry documents.
    md.disable("image")
    md.validateLink = _validate_link  # type: ignore[method-assign]
    return warmed(md)


# U+2060 WORD JOINER: no line break between a word and its footnote marker (email, PDF).
WORD_JOINER = "\u2060"


def footnote_label(meta: Mapping[str, Any]) -> str:
    """The marker a footnote shows: its label as written when that is a number ([^3] is 3),
    otherwise a number the author has not used, in the order of first reference."""
    number = meta.get("number")
    if number:
        return str(number)
    label = _author_number(meta.get("label"))
    return str(label) if label else str(int(meta["id"]) + 1)


def _author_number(label: object) -> int | None:
    """[^3] → 3; None for a name, 0, or digits that are not ASCII ([^²], [^٣])."""
    text = str(label or "")
    if text.isascii() and text.isdecimal() and int(text) > 0:
        return int(text)
    return None


def _number_footnotes(state: Any) -> None:
    """Give each footnote token its marker and list the notes in number order.

    A note keeps the author's number ([^3] is 3); a named or inline note, or a number
    already shown ([^02] after [^2]), takes the next number after the author's highest,
    in reading order: `report[^2] … note[^note]` reads [2] then [3] (decision 0040).
    """
    notes = state.env.get("footnotes", {}).get("list") or {}
    if not notes:
        return
    numbers: dict[int, int] = {}
    authors = [_author_number(notes[note_id].get("label")) for note_id in sorted(notes)]
    following = max((n for n in authors if n), default=0) + 1
    for note_id, own in zip(sorted(notes), authors, strict=True):
        if own is None or own in numbers.values():
            own, following = following, following + 1
        numbers[note_id] = own
    stack = list(state.tokens)
    while stack:
        token = stack.pop()
        if token.type in ("footnote_ref", "footnote_open") and token.meta:
            number = numbers.get(token.meta.get("id"))
            if number:
                token.meta["number"] = str(number)
        if token.children:
            stack.extend(token.children)
    _list_notes_in_number_order(state.tokens, numbers)


def _list_notes_in_number_order(tokens: list[Token], numbers: Mapping[int, int]) -> None:
    """Reorder the notes of the footnote block (footnote_open … footnote_close each)."""
    opens = [i for i, token in enumerate(tokens) if token.type == "footnote_block_open"]
    for start in opens:
        end = next(i for i in range(start, len(tokens)) if tokens[i].type == "footnote_block_close")
        groups: list[list[Token]] = []
        for token in tokens[start + 1 : end]:
            if token.type == "footnote_open" or not groups:
                groups.append([])
            groups[-1].append(token)
        groups.sort(key=lambda group: numbers.get(group[0].meta.get("id", -1), 0))
        tokens[start + 1 : end] = [token for group in groups for token in group]


def _render_footnote_ref(
    renderer: Any, tokens: list[Token], idx: int, options: Any, env: Any
) -> str:
    meta = tokens[idx].meta
    ident = str(int(meta["id"]) + 1)
    sub = int(meta.get("subId", -1) or 0)
    refid = ident + (f":{sub}" if sub > 0 else "")
    return (
        f'{WORD_JOINER}<sup class="footnote-ref"><a href="#fn{ident}" id="fnref{refid}">'
        f"[{escapeHtml(footnote_label(meta))}]</a></sup>"
    )


def _render_footnote_open(
    renderer: Any, tokens: list[Token], idx: int, options: Any, env: Any
) -> str:
    meta = tokens[idx].meta
    label = footnote_label(meta)
    return f'<li id="fn{int(meta["id"]) + 1}" class="footnote-item" value="{label}">'


def markdown_to_html(source: str) -> str:
    """Convert a merged body to HTML: no raw HTML, links to http/https/mailto only."""
    return _parser().render(source)


def markdown_to_text(source: str) -> str:
    """Convert a merged body to plain text that reads well on its own."""
    return _text(_parser().parse(source))


def _text(tokens: list[Token]) -> str:
    tree = SyntaxTreeNode(tokens)
    body: list[str] = []
    notes: list[str] = []
    for node in tree.children:
        if node.type == "footnote_block":
            notes.extend(_footnote(footnote) for footnote in node.children)
        else:
            body.append(_block(node))
    text = "\n\n".join(block for block in body if block)
    if notes:
        text += "\n\n----\n" + "\n".join(notes)
    return text + "\n" if text else ""


def render_body(
    source: str,
    context: Mapping[str, Any],
    *,
    limits: RenderLimits = DEFAULT_LIMITS,
    lang: str = "en",
) -> LetterBody:
    """Merge a Markdown body for one recipient and return its HTML and text parts."""
    placeholders: list[Placeholder] = []
    merged = render(
        source,
        context,
        html=False,
        markdown=True,
        limits=limits,
        lang=lang,
        placeholders=placeholders,
    )
    if placeholders:
        converted = _convert(merged, lang)
        filled = _fill(converted, placeholders, lang)
        if filled is not None:
            return filled
        # A value in a link or heading, or a marker look-alike: convert this letter whole,
        # the values still kept as typed by the typography (decision 0041).
        merged = render(source, context, html=False, markdown=True, limits=limits, lang=lang)
        return _convert(merged, lang, tuple(p.value for p in placeholders)).body
    return _convert(merged, lang).body


# A campaign's letters differ mostly in printed values (names, salutations). Values are
# merged as placeholders, so each distinct shape of a body is converted once and the
# values are put into its HTML and text afterwards — the Markdown conversion was the
# largest cost of a letter.
@lru_cache(maxsize=256)
def _convert(merged: str, lang: str = "en", values: tuple[str, ...] = ()) -> _Converted:
    md = _parser()
    env: dict[str, Any] = {}
    tokens = md.parse(merged, env)  # parsed once for both parts
    # The language's typography on the text only (never link targets or code), so the
    # HTML and text parts both have it (campaign.letters.typography).
    for token in tokens:
        if token.type == "inline" and token.children:
            typeset_tokens(token.children, lang, values)
    body = LetterBody(html=md.renderer.render(tokens, md.options, env), text=_text(tokens))
    return _Converted(body, _placeholders_are_plain_text(tokens))


@dataclasses.dataclass(frozen=True)
class _Converted:
    body: LetterBody
    # False when a placeholder sits where its length or characters matter: in a link
    # (text or address) or a heading (the text part underlines it to its length).
    is_fillable: bool


def _placeholders_are_plain_text(tokens: list[Token]) -> bool:
    in_heading = False
    for token in tokens:
        if token.type == "heading_open":
            in_heading = True
        elif token.type == "heading_close":
            in_heading = False
        elif token.type in {"code_block", "fence"}:
            # Code shows backslash escapes as typed: the value would read differently.
            if PLACEHOLDER_OPEN in token.content:
                return False
        elif token.type == "inline":
            if in_heading and PLACEHOLDER_OPEN in token.content:
                return False
            link_depth = 0
            for child in token.children or ():
                if child.type == "link_open":
                    link_depth += 1
                    if any(
                        PLACEHOLDER_OPEN in str(v) or "%EE%80%80" in str(v)
                        for v in child.attrs.values()
                    ):
                        return False
                elif child.type == "link_close":
                    link_depth -= 1
                elif (link_depth or child.type == "code_inline") and (
                    PLACEHOLDER_OPEN in child.content
                ):
                    return False
    return True


def _fill(
    converted: _Converted, placeholders: list[Placeholder], lang: str = "en"
) -> LetterBody | None:
    """Put the values into a converted body, or None when that would not be exact."""
    if not converted.is_fillable:
        return None
    html, text = converted.body.html, converted.body.text
    for placeholder in placeholders:
        if PLACEHOLDER_OPEN in placeholder.value:
            return None
        if html.count(placeholder.rendered) != 1 or text.count(placeholder.rendered) != 1:
            return None
    for placeholder in placeholders:
        marker, value = placeholder.rendered, placeholder.value
        if lang.startswith("ru") and value.endswith(".") and not value.endswith(".."):
            # "{{ today|date }}." in Russian: the date ends "г.", the sentence adds none.
            html = html.replace(marker + ".", marker, 1)
            text = text.replace(marker + ".", marker, 1)
        html = html.replace(marker, escapeHtml(value), 1)
        text = text.replace(marker, value, 1)
    return LetterBody(html=html, text=text)


def _footnote(node: SyntaxTreeNode) -> str:
    content = "\n\n".join(_block(child) for child in node.children).strip()
    return _hang(f"[{footnote_label(node.meta)}] ", content)


def _hang(marker: str, content: str) -> str:
    indent = " " * len(marker)
    lines = content.split("\n")
    return "\n".join([marker + lines[0], *((indent + line) if line else "" for line in lines[1:])])


def _block(node: SyntaxTreeNode) -> str:
    kind = node.type
    if kind in {"paragraph", "heading"}:
        text = "".join(_inline(child) for child in node.children)
        if kind == "heading" and node.tag in {"h1", "h2"}:
            text += "\n" + ("=" if node.tag == "h1" else "-") * len(text.split("\n")[-1])
        if ">" in text:
            # Typed "\>": text, not a quote. Space-stuffed as RFC 3676 does (campaign.flowed).
            text = "\n".join(" " + line if line[:1] == ">" else line for line in text.split("\n"))
        return text
    if kind == "inline":
        return _inline(node)
    if kind in {"bullet_list", "ordered_list"}:
        start = int(node.attrs.get("start", 1)) if kind == "ordered_list" else 1
        items = []
        for number, item in enumerate(node.children, start=start):
            marker = "- " if kind == "bullet_list" else f"{number}. "
            items.append(_hang(marker, _item(item)))
        return "\n".join(items)
    if kind == "blockquote":
        inner = "\n\n".join(_block(child) for child in node.children)
        return "\n".join(f"> {line}" if line else ">" for line in inner.split("\n"))
    if kind in {"code_block", "fence"}:
        return "\n".join(f"    {line}" for line in node.content.rstrip("\n").split("\n"))
    if kind == "hr":
        return "----"
    return "\n\n".join(_block(child) for child in node.children)


def _item(node: SyntaxTreeNode) -> str:
    parts = [_block(child) for child in node.children]
    tight = all(child.hidden for child in node.children if child.type == "paragraph")
    return ("\n" if tight else "\n\n").join(part for part in parts if part)


def _inline(node: SyntaxTreeNode) -> str:
    kind = node.type
    if kind in {"text", "code_inline"}:
        return node.content
    if kind == "softbreak":
        # One paragraph, as in the HTML: the text part is sent as format=flowed, so the
        # reader's client wraps it (a line break typed inside a paragraph is a space).
        return " "
    if kind == "hardbreak":
        return "\n"
    if kind == "footnote_ref":
        return f"[{footnote_label(node.meta)}]"
    if kind == "footnote_anchor":
        return ""
    text = "".join(_inline(child) for child in node.children)
    if kind == "link":
        href = str(node.attrs.get("href", ""))
        shown = href.removeprefix("mailto:")
        return shown if text in {href, shown} else f"{text} ({shown})"
    return text
