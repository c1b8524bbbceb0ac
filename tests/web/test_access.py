"""Every route declares who may use it, and the declarations are enforced."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from campaign.models import Role
from campaign.web.access import API, PUBLIC, policy_of
from tests.conftest import make_user, sign_in


def _concrete_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?[^<>]+>", "1", rule)


def test_every_route_declares_an_access_policy(app: Flask) -> None:
    missing = [
        rule.endpoint for rule in app.url_map.iter_rules() if policy_of(app, rule.endpoint) is None
    ]
    assert missing == [], f"routes without @allow(...) or @public: {missing}"


def test_anonymous_visitors_are_sent_to_sign_in_from_every_protected_page(
    app: Flask, client: FlaskClient
) -> None:
    for rule in app.url_map.iter_rules():
        if policy_of(app, rule.endpoint) == PUBLIC or "GET" not in (rule.methods or ()):
            continue
        response = client.get(_concrete_path(rule.rule))
        if policy_of(app, rule.endpoint) == API:
            # The JSON API answers a missing key with a 401 problem, never a sign-in page;
            # its public operations (a sign-on page's submit) need no key at all.
            public = getattr(app.view_functions[rule.endpoint], "api_public", False)
            assert response.status_code == (404 if public else 401), rule.rule
            assert response.mimetype == "application/problem+json", rule.rule
            continue
        assert response.status_code == 302, rule.rule
        assert "/login" in response.headers["Location"], rule.rule


def test_roles_below_a_routes_policy_are_refused(app: Flask, client: FlaskClient) -> None:
    viewer = make_user(Role.VIEWER)
    sign_in(client, viewer)
    checked = 0
    for rule in app.url_map.iter_rules():
        policy = policy_of(app, rule.endpoint)
        if not isinstance(policy, Role) or policy == Role.VIEWER:
            continue
        method = "GET" if "GET" in (rule.methods or ()) else "POST"
        response = client.open(_concrete_path(rule.rule), method=method)
        assert response.status_code == 403, f"{method} {rule.rule} let a viewer in"
        checked += 1
    assert checked > 0 or all(
        policy_of(app, r.endpoint) in (PUBLIC, Role.VIEWER) for r in app.url_map.iter_rules()
    )


def test_a_route_without_policy_is_refused_even_to_admins(app: Flask, client: FlaskClient) -> None:
    @app.route("/forgotten-route")
    def forgotten() -> str:
        return "secret"

    sign_in(client, make_user(Role.ADMIN))
    assert client.get("/forgotten-route").status_code == 403


def test_pages_carry_a_strict_content_security_policy(app: Flask, client: FlaskClient) -> None:
    response = client.get("/login")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_no_template_uses_inline_script_or_style() -> None:
    # The CSP above would silently break them in the browser.
    from campaign.config import PROJECT_ROOT

    offenders = []
    for template in (PROJECT_ROOT / "templates").rglob("*.html"):
        if template.parent.name in {"email", "pdf"}:
            # Mail and PDF layouts need inline styles; the preview frames the mail layout
            # under a CSP of its own (sandbox, no scripts).
            continue
        text = template.read_text()
        if (
            re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text)
            or re.search(r"\sstyle=\"", text)
            or re.search(r"\son[a-z]+=\"", text)
        ):
            offenders.append(template.name)
    assert offenders == []
