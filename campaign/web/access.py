"""Route access policies: every view declares who may use it; undeclared routes are refused.

Use `@allow(Role.EDITOR)` (that role or any above it) or `@public` on each view. The
before-request hook installed by `enforce_access_policies` denies by default, so a
route someone forgot to annotate is unreachable rather than open; tests/web/test_access.py
also walks the URL map and fails on any route without a policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, abort, redirect, request, url_for
from flask_login import current_user

from campaign.models.user import Role, User

F = TypeVar("F", bound=Callable[..., Any])
POLICY_ATTRIBUTE = "access_policy"
PUBLIC = "public"
#: The JSON API's views: no session, an API key checked by the view (campaign/web/api/auth.py).
API = "api"

# Endpoints served by Flask itself rather than by our views.
_BUILTIN_ENDPOINTS = {"static"}


def signed_in_user() -> User:
    """The signed-in user as a model object (for views behind `allow`, where one always is)."""
    user: User = current_user._get_current_object()
    return user


def may(role: Role | str) -> bool:
    """Whether the signed-in user's role is `role` or above: the one check behind what a page
    offers (buttons, links, columns). Templates call it as `may('editor')`."""
    return bool(current_user.is_authenticated and current_user.may(role))


def allow(minimum_role: Role) -> Callable[[F], F]:
    """Allow signed-in users whose role is `minimum_role` or above."""

    def decorate(view: F) -> F:
        setattr(view, POLICY_ATTRIBUTE, minimum_role)
        return view

    return decorate


def public(view: F) -> F:
    """Allow anyone, signed in or not (login page, health check, later: tracking links)."""
    setattr(view, POLICY_ATTRIBUTE, PUBLIC)
    return view


def policy_of(app: Flask, endpoint: str) -> Role | str | None:
    if endpoint in _BUILTIN_ENDPOINTS:
        return PUBLIC
    view = app.view_functions.get(endpoint)
    return getattr(view, POLICY_ATTRIBUTE, None)


def enforce_access_policies(app: Flask) -> None:
    app.add_template_global(may, "may")

    @app.before_request
    def _check_access() -> Any:
        if request.endpoint is None:
            return None  # 404 / 405 are handled by Flask
        policy = policy_of(app, request.endpoint)
        if policy is None:
            app.logger.error("route %s has no access policy; refusing", request.endpoint)
            abort(403)
        if policy in (PUBLIC, API):
            # API views authenticate their own key (campaign/web/api/auth.py), never a session.
            return None
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login", next=request.full_path))
        assert isinstance(policy, Role)
        if not may(policy):
            abort(403)
        return None
