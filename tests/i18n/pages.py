"""Shared by the language tests: a staff member in a language, a page's text, no codes."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from flask.testing import FlaskClient

from campaign.extensions import db
from campaign.models import Role, User
from tests.conftest import make_user


def user_in(role: Role, language: str, email: str | None = None) -> User:
    """A staff account of `role` whose interface language is `language`."""
    user = make_user(role, email or f"{role.value}.{language or 'browser'}@example.org")
    user.language = language
    db.session.commit()
    return user


def page_text(client: FlaskClient, url: str, method: str = "GET", **kwargs: Any) -> str:
    """The page at `url` (after the redirect of a POST; a form's 422 is a page too), its
    entities decoded."""
    response = client.open(url, method=method, follow_redirects=True, **kwargs)
    assert response.status_code in (200, 422), url
    return unescape(response.get_data(as_text=True))


def text_nodes(html: str) -> set[str]:
    """What a reader sees between tags (scripts, styles and attributes left out)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.DOTALL)
    return {" ".join(node.split()) for node in re.findall(r">([^<]+)<", html) if node.strip()}


def assert_no_codes(html: str, *codes: str) -> None:
    shown = text_nodes(html)
    leaked = [code for code in codes if code in shown]
    assert not leaked, f"raw codes shown as text: {leaked}"
