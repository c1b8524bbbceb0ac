"""The letter as a PDF (WeasyPrint): letterhead, date, address block, subject, body, footnotes.

WeasyPrint lays out real HTML and CSS and writes text that can be searched and copied.
It never fetches anything: the letter is built from our own template and the merged,
sanitised body, and any URL it meets (an image, a stylesheet) is refused, so opening or
printing a letter can neither leak where it is made nor pull in outside content. The one
image it may show, the organisation's logo, is handed over from memory under a private
address no page can name.

The PDF is tagged (PDF/UA-1) with the letter's language, its subject as title and the
organisation as author. Footnotes are real footnotes, at the foot of the page of their
reference; the closing and the signatories are kept together and never justified
(decision 0043).
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from typing import Any, NoReturn

from flask import render_template
from flask_babel import force_locale
from rq.timeouts import BaseTimeoutException

from campaign.letters.formatting import format_date
from campaign.letters.types import RenderedLetter

# The logo's address inside one PDF; the fetcher serves it and refuses everything else.
LOGO_URL = "campaign-logo:letterhead"
_BLOCKS = frozenset({"p", "div", "ul", "ol", "li", "blockquote", "section", "pre", "table"})
_SPACES = re.compile(r"[\s\u00a0\u202f\u2007\u2060]+")


class PdfError(RuntimeError):
    """The PDF could not be made; the message says why in words for people."""


@dataclass(frozen=True)
class Letterhead:
    """What the top of the first page shows: set on the Organisation page (admins)."""

    name: str
    address_lines: tuple[str, ...] = ()
    phone: str = ""
    email: str = ""
    website: str = ""
    logo: bytes | None = None
    logo_type: str = ""  # "image/png" or "image/jpeg"


def _refuse_fetch(url: str, *_args: Any, **_kwargs: Any) -> NoReturn:
    raise PdfError(f"a letter PDF may not load outside resources ({url[:80]})")


# --- The body, laid out for paper -----------------------------------------------------------


def _norm(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _classes(element: ET.Element) -> set[str]:
    return set((element.get("class") or "").split())


def _add_class(element: ET.Element, name: str) -> None:
    element.set("class", " ".join(sorted(_classes(element) | {name})))


def _text_of(element: ET.Element) -> str:
    return _norm("".join(element.itertext()))


def _is_backref(element: ET.Element) -> bool:
    return element.tag == "a" and (
        "footnote-backref" in _classes(element) or element.get("href", "").startswith("#fnref")
    )


def _drop_backrefs(root: ET.Element) -> None:
    """Remove the "↩" links back to the reference: paper has nowhere to go back to."""
    for holder in list(root.iter()):
        for child in [c for c in holder if _is_backref(c)]:
            index = list(holder).index(child)
            tail = child.tail or ""
            if index == 0:
                holder.text = (holder.text or "").rstrip() + tail
            else:
                before = holder[index - 1]
                before.tail = (before.tail or "").rstrip() + tail
            holder.remove(child)


def _inline_copy(source: ET.Element, into: ET.Element) -> None:
    """Copy `source`'s content into `into` as inline content: blocks become line breaks."""
    _append_text(into, source.text)
    for child in source:
        if child.tag in _BLOCKS:
            if len(into) or _norm(into.text or ""):
                into.append(ET.Element("br"))
            _inline_copy(child, into)
            _append_text(into, (child.tail or "").strip() and child.tail)
            continue
        into.append(copy.deepcopy(child))
    if len(into):
        into[-1].tail = (into[-1].tail or "").rstrip()
    else:
        into.text = (into.text or "").rstrip()


def _append_text(element: ET.Element, text: str | None) -> None:
    if not text:
        return
    if len(element):
        element[-1].tail = (element[-1].tail or "") + text
    else:
        element.text = (element.text or "") + text


def _parents(root: ET.Element) -> dict[ET.Element, ET.Element]:
    return {child: parent for parent in root.iter() for child in parent}


def _footnotes_to_page_foot(root: ET.Element) -> list[ET.Element]:
    """Move each footnote to its first reference (CSS `float: footnote`).

    Returns the notes that no text refers to (a note referred to only from another note):
    they stay a list after the signatures rather than being lost.
    """
    sections = [
        el for el in root.iter() if el.tag in ("section", "div") and "footnotes" in _classes(el)
    ]
    for section in sections:
        _drop_backrefs(section)
    # The notes are the items of the section's own list (not lists inside a note).
    notes = [item for section in sections for ol in section for item in ol if item.tag == "li"]
    items = {item.get("id", ""): item for item in notes if item.get("id")}
    parents = _parents(root)
    in_notes = {el for section in sections for el in section.iter()}
    labels = {
        link.get("href", "")[1:]: _text_of(link).strip("[]")
        for link in root.iter("a")
        if link.get("href", "").startswith("#fn") and not _is_backref(link)
    }
    placed: set[str] = set()
    for sup in [el for el in root.iter("sup") if el not in in_notes]:
        link = next((a for a in sup.iter("a") if a.get("href", "").startswith("#")), None)
        if link is None:
            continue
        target = link.get("href", "")[1:]
        item = items.get(target)
        if item is None or target in placed:
            _add_class(sup, "footnote-ref")
            continue
        placed.add(target)
        note = ET.Element("span", {"class": "footnote"})
        note.set("data-label", labels.get(target) or str(len(placed)))
        _inline_copy(item, note)
        note.tail = sup.tail
        parent = parents[sup]
        parent[list(parent).index(sup)] = note
    for section in sections:
        holder = parents.get(section)
        if holder is not None:
            holder.remove(section)
    leftover = [item for item in notes if item.get("id", "") not in placed or not item.get("id")]
    for item in leftover:
        item.set("data-label", labels.get(item.get("id", ""), ""))
    for separator in [el for el in root.iter("hr") if "footnotes-sep" in _classes(el)]:
        holder = parents.get(separator)
        if holder is not None:
            holder.remove(separator)
    return leftover


def _signatory_lines(paragraph: ET.Element) -> list[ET.Element]:
    """Split a paragraph of hard-broken lines into one block per line (one signer each)."""
    lines: list[ET.Element] = []
    current = ET.Element("div", {"class": "signatory"})
    current.text = paragraph.text
    for child in paragraph:
        if child.tag == "br":
            lines.append(current)
            current = ET.Element("div", {"class": "signatory"})
            current.text = (child.tail or "").lstrip("\n")
            continue
        current.append(child)
    lines.append(current)
    return [line for line in lines if _text_of(line)]


def _sign_off(body: ET.Element, letter: RenderedLetter) -> ET.Element | None:
    """Wrap the closing and the signatories the body prints in one block kept together."""
    children = list(body)
    closing = _norm(letter.closing)
    signers = {_norm(line) for line in letter.signatory_lines if line.strip()}
    start: int | None = None
    if closing:
        for index, child in enumerate(children):
            if child.tag == "p" and _text_of(child) == closing:
                start = index
    if start is None and signers:
        for index, child in enumerate(children):
            lines = {_norm(line) for line in "".join(child.itertext()).split("\n")}
            if child.tag == "p" and lines & signers:
                start = index
                break
    if start is None:
        return None
    block = ET.Element("div", {"class": "sign-off"})
    for index, child in enumerate(children[start:]):
        body.remove(child)
        if index == 0 and _text_of(child) == closing:
            _add_class(child, "closing")
            block.append(child)
        elif child.tag == "p" and child.find("br") is not None:
            tail = child.tail
            for line in _signatory_lines(child):
                block.append(line)
            if len(block):
                block[-1].tail = tail
        else:
            _add_class(child, "signatory-group")
            block.append(child)
    body.append(block)
    return block


def _layout_signatories(block: ET.Element, lines: tuple[str, ...]) -> None:
    """Add the layout's own signatory block (the body does not print {{ signatories }})."""
    for line in lines:
        if line.strip():
            ET.SubElement(block, "div", {"class": "signatory"}).text = line
        else:
            ET.SubElement(block, "div", {"class": "gap"})


def paper_body(letter: RenderedLetter) -> tuple[str, str]:
    """The body's HTML as the PDF lays it out, and the notes left as a list after it.

    Footnotes move to the foot of their page; the closing and every signatory line go
    into one block kept together (the layout's own block too, when the body has none).
    """
    import tinyhtml5

    root = tinyhtml5.parse(
        f"<div id='letter-body'>{letter.html_body}</div>", namespace_html_elements=False
    )
    body = next(el for el in root.iter("div") if el.get("id") == "letter-body")
    leftover = _footnotes_to_page_foot(body)
    block = _sign_off(body, letter)
    if not letter.signatories_in_body and any(line.strip() for line in letter.signatory_lines):
        if block is None:
            block = ET.SubElement(body, "div", {"class": "sign-off"})
        _layout_signatories(block, letter.signatory_lines)
    html = (body.text or "") + "".join(
        ET.tostring(child, encoding="unicode", method="html") for child in body
    )
    notes = ""
    if leftover:
        notes_list = ET.Element("ol", {"class": "endnotes"})
        notes_list.extend(leftover)
        notes = ET.tostring(notes_list, encoding="unicode", method="html")
    return html, notes


def letter_html(
    letter: RenderedLetter,
    *,
    organisation: str,
    letter_date: date,
    letterhead: Letterhead | None = None,
) -> str:
    """The HTML the PDF is laid out from (also handy to show what the PDF will hold)."""
    body, notes = paper_body(letter)
    head = letterhead or Letterhead(name=organisation)
    # Labels on the letterhead ("Tel.") are in the letter's language, not the sender's.
    with force_locale(letter.language.replace("-", "_")):
        return render_template(
            "pdf/letter.html",
            letter=letter,
            organisation=head.name or organisation,
            letterhead=head,
            logo_url=LOGO_URL if head.logo else "",
            date_text=format_date(letter_date, letter.language),
            body=body,
            notes=notes,
        )


def letter_pdf(
    letter: RenderedLetter,
    *,
    organisation: str,
    letter_date: date,
    letterhead: Letterhead | None = None,
) -> bytes:
    """Lay the letter out as a tagged (PDF/UA-1) A4 PDF with extractable text."""
    import weasyprint

    html = letter_html(
        letter, organisation=organisation, letter_date=letter_date, letterhead=letterhead
    )
    logo = letterhead.logo if letterhead else None
    logo_type = letterhead.logo_type if letterhead else ""

    class _NoFetching(weasyprint.URLFetcher):
        def fetch(self, url: str, headers: Any = None) -> Any:
            if logo and url == LOGO_URL:
                return weasyprint.urls.URLFetcherResponse(
                    url, body=logo, headers={"Content-Type": logo_type}
                )
            _refuse_fetch(url)

    try:
        document = weasyprint.HTML(string=html, url_fetcher=_NoFetching(), base_url=None)
        pdf: bytes = document.write_pdf(pdf_variant="pdf/ua-1")
    except (PdfError, BaseTimeoutException):
        raise  # the job's timeout is RQ's Exception: it ends the job, not this letter
    except Exception as error:  # WeasyPrint raises many kinds; the sender needs one message
        kind = type(error).__name__
        raise PdfError(f"the PDF of this letter could not be made ({kind})") from error
    return pdf
