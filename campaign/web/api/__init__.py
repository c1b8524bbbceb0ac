"""The JSON API at /api/v1 (issue 17): an edge beside the pages and the CLI.

Each resource module declares its views with `campaign.web.api.auth.operation` and calls the
same services as the pages and commands (no second copy of a rule). The pieces:

- blueprint.py: the blueprint and Spectree, which validates with pydantic models and builds
  the OpenAPI 3.1 document from them;
- auth.py: keys, scopes, roles, rate limits (`operation`);
- problems.py: RFC 9457 errors; conventions.py: cursors, ETags, Idempotency-Key;
- docs.py: /api/v1/openapi.json and the reference page.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSessionInterface

from campaign.web.api.blueprint import API_PREFIX, bp

#: The modules that add views to the blueprint, imported once by `register_api`.
RESOURCE_MODULES = (
    "docs",
    "me",
    "contacts",
    "audiences",
    "suppressions",
    "replies",
    "sign_on",
    "calendar",
    "statements",
    "campaigns",
    "deliveries",
)


def is_api_request() -> bool:
    return request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")


class _NoSessionForApi(SecureCookieSessionInterface):
    """The API neither reads nor writes the session cookie: a browser's signed-in session
    must not name the actor of an API call in the audit log, nor send an API call through
    the pages' password-change or two-factor redirects, nor be set or cleared by it."""

    def open_session(self, app: Flask, request: Any) -> Any:
        if is_api_request():
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        if g.get("api_request") or is_api_request():
            return
        super().save_session(app, session, response)


class _ReadableJsonForApi(DefaultJSONProvider):
    """API answers built from dicts keep their letters as they are (UTF-8), as the model
    answers do: "Ошибка", not "\\u041e…", in a terminal or a log."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if has_request_context() and (g.get("api_request") or is_api_request()):
            kwargs.setdefault("ensure_ascii", False)
        return super().dumps(obj, **kwargs)


def register_api(app: Flask) -> None:
    from campaign.extensions import csrf

    # The views are added to the blueprint when their modules are first imported, before
    # the blueprint is registered on any app (Flask refuses changes after that).
    for name in RESOURCE_MODULES:
        import_module(f"campaign.web.api.{name}")
    app.register_blueprint(bp)
    csrf.exempt(bp)
    if type(app.session_interface) is SecureCookieSessionInterface:
        app.session_interface = _NoSessionForApi()
    if type(app.json) is DefaultJSONProvider:
        app.json = _ReadableJsonForApi(app)


def _audit_call(response: Response) -> Response:
    """One audit entry per call: which key, which route, what status; never the body."""
    from campaign.extensions import db
    from campaign.models import utcnow
    from campaign.services.accounts.audit import record_event

    key = g.get("api_key")
    if request.method in ("HEAD", "OPTIONS"):
        return response
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    if key is None and not _first_anonymous_call_this_minute():
        # Calls without a key (refused ones, the public sign-on submit) are written once a
        # minute per network: a flood of them must not fill the audit log, nor take
        # SQLite's write lock from imports and sending once per request.
        return response
    try:
        if db.session.is_active is False:
            db.session.rollback()
        record_event(
            "api.call",
            target_type="api_key" if key is not None else "",
            target_id=key.id if key is not None else "",
            actor=key.user if key is not None else None,
            # A public operation's caller is a member of the public (the sign-on submit):
            # their network only, as the public pages record them.
            network_only=bool(g.get("api_public")),
            detail={
                "key": key.prefix if key is not None else "",
                "method": request.method,
                "route": rule,
                "status": response.status_code,
            },
        )
        if key is not None:
            now = utcnow()
            if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
                key.last_used_at = now
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return response


def _no_type_without_body(response: Response) -> Response:
    """A 204 has no body, so no Content-Type (Flask would say text/html)."""
    if response.status_code == 204:
        response.headers.pop("Content-Type", None)
    return response


def problem_for(error: Any) -> Response:
    """An HTTP error under /api/v1 as a problem, in the key user's language when the call
    carries a live key (campaign/web/__init__.py uses it for routing errors too)."""
    from campaign.web.api.auth import identify_quietly
    from campaign.web.api.problems import from_http_exception

    identify_quietly()
    return from_http_exception(error)


def _install_handlers() -> None:
    from campaign.web.api.problems import SLUGS

    for code in SLUGS:
        # Per status code: Flask looks for a code's handler on the blueprint before the
        # app's HTML error pages (campaign/web/__init__.py).
        bp.register_error_handler(code, problem_for)
    bp.after_request(_no_type_without_body)
    bp.after_request(_audit_call)


_install_handlers()


def _first_anonymous_call_this_minute() -> bool:
    import time

    from campaign.queue import get_redis
    from campaign.tracking.buffer import ip_prefix

    minute = int(time.time() // 60)
    name = f"api:audit:anonymous:{ip_prefix(request.remote_addr)}:{minute}"
    return bool(get_redis().set(name, 1, nx=True, ex=120))
