"""Shared by the page tests: a response's HTML or text, one element's text, CSRF tokens.

`html_of` is the page as sent, entities kept: tests that check escaping (`&lt;script&gt;`)
read it. `text_of` decodes the entities (tags kept): what a reader sees, for tests of
wording. Turning CSRF on for one test: `@pytest.mark.parametrize("csrf_enabled", [True])`
(the `csrf_enabled` fixture in tests/conftest.py), then `csrf_token(client, path)`.
"""

from __future__ import annotations

import html
import re
from typing import Any

from flask.testing import FlaskClient

_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def html_of(response: Any) -> str:
    """The page as sent, entities kept."""
    return str(response.get_data(as_text=True))


def text_of(response: Any) -> str:
    """The page with its entities decoded (`&#39;` read as `'`), tags kept."""
    return html.unescape(response.get_data(as_text=True))


def element_text(page: str, element_id: str) -> str:
    """The text inside the element with `id="element_id"`, tags dropped, spaces folded."""
    found = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert found, f"no #{element_id} on the page"
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(2)))).strip()


def visible_text(page: str) -> str:
    """The whole page's text with tags dropped and spaces folded (entities kept)."""
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def csrf_token_in(page: str) -> str:
    """The CSRF token of the first form on `page`."""
    found = _CSRF_FIELD.search(page)
    assert found, "no csrf_token field on the page"
    return found.group(1)


def csrf_token(client: FlaskClient, path: str) -> str:
    """The CSRF token of the first form on the page at `path` (the session's token)."""
    return csrf_token_in(client.get(path).get_data(as_text=True))
