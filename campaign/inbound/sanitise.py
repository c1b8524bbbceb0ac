"""Received HTML made safe to show: an nh3 allow-list of text formatting, no remote content.

Replies can come from anyone, and the organisations using this are targets. What leaves
here has no script, no style, no form, no frame, no event handler, no <meta>/<base>, and no
URL the browser would fetch on its own: an <img> keeps its picture only when the picture is
inline (data:), otherwise it becomes the text "[remote image blocked]". The framed page also
carries FRAME_CSP, so a sanitiser bug would still meet a browser that fetches nothing.
"""

from __future__ import annotations

import html
import re

import nh3

# default-src 'none' also forbids fonts, media, frames and connections; style-src allows
# only the small inline stylesheet of the frame document itself (received style is removed).
FRAME_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)

REMOTE_IMAGE_TEXT = "[remote image blocked]"

_TAGS = {
    # text and paragraphs
    *("p", "br", "hr", "div", "span", "center", "blockquote", "pre", "address"),
    *("b", "strong", "i", "em", "u", "s", "strike", "del", "ins", "sub", "sup", "small"),
    *("mark", "q", "cite", "code", "kbd", "samp", "tt", "var", "abbr", "dfn", "big"),
    *("h1", "h2", "h3", "h4", "h5", "h6"),
    # lists and tables
    *("ul", "ol", "li", "dl", "dt", "dd"),
    *("table", "caption", "colgroup", "col", "thead", "tbody", "tfoot", "tr", "th", "td"),
    "a",
    "img",
}
# Removed with everything inside them: their text is code or page furniture, not the message.
_DROPPED_WITH_CONTENT = {
    *("script", "style", "title", "head", "noscript", "template"),
    *("iframe", "frame", "frameset", "object", "embed", "applet", "svg", "math"),
    *("textarea", "select", "button"),
}
_ATTRIBUTES = {
    "*": {"title", "dir", "lang"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align", "valign"},
    "th": {"colspan", "rowspan", "align", "valign", "scope"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start"},
}
_LINK_SCHEMES = ("http:", "https:", "mailto:")
_INLINE_IMAGE = re.compile(r"data:image/(png|gif|jpeg|webp);", re.IGNORECASE)
# nh3's output is serialised by html5ever: attribute values are always double-quoted with
# '"' escaped, and a '<' in text is always "&lt;", so this pattern matches exactly one tag.
_IMG_TAG = re.compile(r'<img((?:\s+[a-zA-Z-]+="[^"]*")*)\s*/?>')
_ALT = re.compile(r'\balt="([^"]*)"')


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    """nh3's attribute filter: None removes the attribute."""
    compact = "".join(value.split()).lower()
    if tag == "a" and attribute == "href":
        return value if compact.startswith(_LINK_SCHEMES) else None
    if tag == "img" and attribute == "src":
        return value if _INLINE_IMAGE.match(compact) else None
    return value


def _replace_blocked_image(found: re.Match[str]) -> str:
    attributes = found.group(1)
    if ' src="' in attributes:
        return found.group(0)
    alt = _ALT.search(attributes)
    # The alt text is still escaped as serialised; unescape then escape once, for clarity.
    label = html.unescape(alt.group(1)).strip() if alt else ""
    text = f"{REMOTE_IMAGE_TEXT[:-1]}: {label}]" if label else REMOTE_IMAGE_TEXT
    return f'<span class="blocked-image">{html.escape(text)}</span>'


_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags=_DROPPED_WITH_CONTENT,
    attributes=_ATTRIBUTES,
    attribute_filter=_keep_attribute,
    url_schemes={"http", "https", "mailto", "data"},
    # A relative URL would resolve against our own origin: a request to the app itself.
    url_relative="deny",
    link_rel="noopener noreferrer nofollow",
    set_tag_attribute_values={"a": {"target": "_blank"}},
    strip_comments=True,
)


def safe_html(received: str) -> str:
    """Return `received` HTML reduced to text formatting, links and inline images only."""
    if not received:
        return ""
    return _IMG_TAG.sub(_replace_blocked_image, _CLEANER.clean(received))
