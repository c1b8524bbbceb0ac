"""Who may call an API view: `operation` declares each view's scope, least role and models.

A call carries `Authorization: Bearer cak_…`. The key must be live (not revoked, not
expired, its user active), hold the view's scope, and its user must still have the view's
role (a demoted user's keys lose what the user lost). Session cookies never authenticate
the API, so a page on another site cannot make a signed-in browser call it. Each key has a
rate limit in Redis (429 with Retry-After), and every call is audited with the key, the
route and the status, never the body.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, g, request
from flask_babel import gettext as _
from flask_babel import refresh
from spectree import Response as SpecResponse
from werkzeug.exceptions import RequestEntityTooLarge

from campaign.extensions import db
from campaign.labels import label
from campaign.models import Role, utcnow
from campaign.services.accounts import api_keys
from campaign.web.access import API, POLICY_ATTRIBUTE
from campaign.web.api.blueprint import spec
from campaign.web.api.problems import ApiProblem, Problem, max_body_bytes, too_large_detail

F = TypeVar("F", bound=Callable[..., Any])


# What every operation may answer besides its success: documented so that a client (and
# Schemathesis) knows each status it can meet.
_COMMON_ERRORS = (400, 401, 403, 413, 415, 422, 429)


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""
    return token.strip()


def _when(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%d %H:%M")) + " UTC"


def _why_not_live(token: str) -> str:
    """For the holder of a whole token (prefix and secret right) whose key no longer works:
    why, and what to do. "" for anything else (a garbled or unknown token learns nothing)."""
    key = api_keys.matching_key(token)
    if key is None:
        return ""
    if key.revoked_at is not None:
        return _(
            "This API key was revoked on %(when)s. Make a new one on your account page.",
            when=_when(key.revoked_at),
        )
    if key.expires_at is not None and key.expires_at <= utcnow():
        return _(
            "This API key expired on %(when)s. Make a new one on your account page.",
            when=_when(key.expires_at),
        )
    if key.user is None or not key.user.is_active_account:
        return _(
            "The account of this API key is deactivated; its keys no longer work. "
            "Ask an administrator."
        )
    return ""


def _unauthorized(token: str = "") -> ApiProblem:
    return ApiProblem(
        401,
        (_why_not_live(token) if token else "")
        or _("Send a valid API key: Authorization: Bearer <key>."),
        headers={"WWW-Authenticate": 'Bearer realm="campaign"'},
    )


def authenticate() -> Any:
    """The request's live key (also `g.api_key`; its user becomes `current_user`)."""
    token = _bearer_token()
    key = api_keys.authenticate(token) if token else None
    if key is None:
        raise _unauthorized(token)
    _adopt(key)
    return key


def _adopt(key: Any) -> None:
    g.api_key = key
    # Flask-Login's current user for this request only; nothing is written to a session.
    g._login_user = key.user


def identify_quietly() -> None:
    """Before an error that came ahead of the view's own checks (a body too large for the
    input guard that reads it first, a method the address does not take): the caller's
    live key, if any, so that the problem is in its user's language and audited under the
    key. A missing or wrong key changes nothing here (the error stays what it was)."""
    if g.get("api_key") is not None:
        return
    token = _bearer_token()
    key = api_keys.authenticate(token) if token else None
    if key is not None:
        _adopt(key)
        refresh()


def _check_rate(key: Any) -> None:
    from campaign.queue import get_redis

    limit = int(current_app.config["API_RATE_LIMIT_PER_MINUTE"])
    if limit <= 0:
        return
    window = int(time.time() // 60)
    name = f"api:rate:{key.id}:{window}"
    connection = get_redis()
    count = int(connection.incr(name))
    if count == 1:
        connection.expire(name, 120)
    if count > limit:
        retry_after = 60 - int(time.time() % 60)
        raise ApiProblem(
            429,
            _("This key made more than %(limit)s calls in a minute.", limit=limit),
            headers={"Retry-After": str(max(retry_after, 1))},
        )


def _check_body_size() -> None:
    limit = max_body_bytes()
    length = request.content_length
    if length is not None and length > limit:
        raise ApiProblem(413, too_large_detail())
    # Also the limit of a body sent without a length (Transfer-Encoding: chunked): reading
    # past it raises RequestEntityTooLarge, answered as 413 below.
    request.max_content_length = limit


def _has_body() -> bool:
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    return bool(request.content_length) or chunked


def _chunked_past_limit() -> bool:
    """A body sent without a length goes past the limit: Werkzeug stops reading at the
    limit without a word (the JSON would look truncated, a 400), so look one byte further
    in what the server received."""
    limit = request.max_content_length
    if limit is None or request.content_length is not None:
        return False
    data = request.get_data(cache=True)
    if len(data) < limit:
        return False
    return bool(request.environ["wsgi.input"].read(1))


def _check_json_body() -> None:
    if request.method in ("POST", "PUT", "PATCH") and _has_body():
        if request.mimetype not in ("application/json", "application/merge-patch+json"):
            raise ApiProblem(415, _("Send the body as JSON (Content-Type: application/json)."))
        try:
            if _chunked_past_limit():
                raise RequestEntityTooLarge()
            parsed = request.get_json(silent=True)
        except RequestEntityTooLarge:
            raise ApiProblem(413, too_large_detail()) from None
        if parsed is None:
            raise ApiProblem(
                400,
                _("The body is not valid JSON."),
                errors=[{"field": "body", "message": _("The body is not valid JSON.")}],
            )


def _scope_label(scope: str) -> str:
    """ "contacts:write" as the account page names it: "Contacts, lists and segments: read
    and write"."""
    group, _sep, access = scope.partition(":")
    if group not in api_keys.GROUP_LABELS or access not in api_keys.ACCESS_LABELS:
        return scope
    return _(
        "%(group)s: %(access)s",
        group=api_keys.GROUP_LABELS[group],
        access=api_keys.ACCESS_LABELS[access],
    )


def operation(
    scope: str | None,
    *,
    role: Role = Role.VIEWER,
    query: Any = None,
    json: Any = None,
    responses: dict[int, Any] | None = None,
    tags: tuple[str, ...] = (),
    errors: tuple[int, ...] = (),
    writes: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare an API view.

    `scope` ("contacts:read"), "" for any live key, None for a public view that needs no
    key; `role` the least
    role of the key's user (the same as the matching page's); `query`/`json` the request
    models; `responses` status → model (None for no body); `errors` statuses besides the
    common ones; `writes` commits the transaction after a successful answer (views never
    commit) and rolls it back otherwise.
    """
    documented: dict[str, Any] = {}
    for status, model in (responses or {200: None}).items():
        documented[f"HTTP_{status}"] = model
    for status in (*_COMMON_ERRORS, *errors):
        if scope is None and status in (401, 403):
            continue
        documented.setdefault(f"HTTP_{status}", Problem)

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        validated = spec.validate(
            query=query,
            json=json,
            resp=SpecResponse(**documented),
            tags=tags,
            # Public views need no key; the others name their scope as the bearer scheme's
            # role (OpenAPI 3.1 allows roles for any scheme), so clients see what to ask for.
            security={} if scope is None else ({"bearer": [scope]} if scope else None),
        )(view)

        @wraps(validated)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            g.api_request = True
            g.api_public = scope is None
            if scope is not None:
                # The key first (nothing of the body is read for it), so that every answer,
                # a 413 included, is in the key user's language.
                key = authenticate()
                if scope and not api_keys.has_scope(key, scope):
                    raise ApiProblem(
                        403,
                        _(
                            "This key does not have the scope %(scope)s (%(label)s). Make a "
                            "key that has it on your account page.",
                            scope=scope,
                            label=_scope_label(scope),
                        ),
                        required_scope=scope,
                    )
                if not key.user.may(role):
                    raise ApiProblem(
                        403,
                        _(
                            "This needs the role %(needed)s or a higher one; this key's "
                            "account has the role %(current)s.",
                            needed=label(role.value, "role"),
                            current=label(key.user.role, "role"),
                        ),
                        required_role=role.value,
                    )
                _check_rate(key)
            _check_body_size()
            _check_json_body()
            try:
                response = validated(*args, **kwargs)
            except Exception:
                db.session.rollback()
                raise
            if writes:
                status = response.status_code if isinstance(response, Response) else 200
                if status < 400:
                    db.session.commit()
                else:
                    db.session.rollback()
            return response

        setattr(guarded, POLICY_ATTRIBUTE, API)
        guarded.api_public = scope is None  # type: ignore[attr-defined]
        return guarded

    return decorate
