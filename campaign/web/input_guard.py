"""Refuse what no field can hold before any view reads it: NUL characters (PostgreSQL text
cannot store them, so they were a 500 there and a stored oddity on SQLite) in the path, the
query string or a JSON body, and JSON nested deeper than any of our bodies (Python's
parser runs out of stack near 1,000 levels: a 500 from a 2 KB body)."""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, request
from flask_babel import gettext as _

MAX_JSON_DEPTH = 32


def _unstorable(value: Any, path: str = "", depth: int = 0) -> tuple[str, str] | None:
    """(where, "nul" or "deep") for the first string with a NUL or value nested too deep."""
    where = path or "body"
    if depth > MAX_JSON_DEPTH:
        return where, "deep"
    if isinstance(value, str):
        return (where, "nul") if "\x00" in value else None
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        items = [(str(key), item) for key, item in value.items()]
    elif isinstance(value, list):
        items = [(str(index), item) for index, item in enumerate(value)]
    for key, item in items:
        inner = f"{path}.{key}" if path else key
        if "\x00" in key:
            return inner.replace("\x00", ""), "nul"
        found = _unstorable(item, inner, depth + 1)
        if found:
            return found
    return None


def _refuse(field: str, reason: str) -> Any:
    from campaign.web.api import is_api_request

    message = (
        _("The body is nested too deeply.")
        if reason == "deep"
        else _("This value contains a NUL character, which cannot be stored.")
    )
    if is_api_request():
        from campaign.web.api.problems import problem_response

        return problem_response(400, message, errors=[{"field": field, "message": message}])
    abort(400)


def install_input_guard(app: Flask) -> None:
    @app.before_request
    def _refuse_unstorable_input() -> Any:
        from campaign.web.api import is_api_request

        if "\x00" in request.path:
            if not is_api_request():
                # No page's address holds a NUL: nothing is there (the public pages answer
                # every malformed token with the same 404).
                abort(404)
            return _refuse("path", "nul")
        for name, value in request.args.items(multi=True):
            if "\x00" in name or "\x00" in value:
                return _refuse(name.replace("\x00", ""), "nul")
        # Forms are left to their own rules (a page's field errors, or a bad `next` simply
        # ignored); the services refuse a NUL where it would be stored.
        if request.is_json:
            if is_api_request():
                # Read no more than the API takes (a chunked body has no length to check).
                from campaign.web.api.problems import max_body_bytes

                request.max_content_length = max_body_bytes()
            try:
                body = request.get_json(silent=True)
            except RecursionError:
                return _refuse("body", "deep")
            found = _unstorable(body)
            if found:
                return _refuse(*found)
        return None
