"""Blueprints, one per area; every view declares an access policy (campaign.web.access)."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from jinja2 import pass_context

from campaign.web.access import enforce_access_policies


def register_blueprints(app: Flask) -> None:
    from campaign.web import (
        audiences,
        audit,
        auth,
        calendar,
        campaigns,
        cases,
        contacts,
        countries,
        dashboard,
        devmail,
        home,
        imports,
        mailboxes,
        presend,
        previews,
        replies,
        salutations,
        schedule_runs,
        schedules,
        sign_on_admin,
        sign_on_invitations,
        sign_on_public,
        smtp_accounts,
        statements,
        suppressions,
        unsubscribe,
        users,
    )

    for module in (
        auth,
        home,
        devmail,
        imports,
        contacts,
        audiences,
        statements,
        previews,
        presend,
        salutations,
        countries,
        campaigns,
        dashboard,
        suppressions,
        smtp_accounts,
        unsubscribe,
        users,
        audit,
        replies,
        mailboxes,
        schedules,
        schedule_runs,
        calendar,
        cases,
        sign_on_admin,
        sign_on_invitations,
        sign_on_public,
    ):
        app.register_blueprint(module.bp)
    enforce_access_policies(app)
    _add_security_headers(app)
    _register_error_pages(app)
    _register_template_helpers(app)


# No inline script or style, no third-party origin: a stored XSS payload cannot run, and a
# page cannot be framed or leak its address to another site.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def _add_security_headers(app: Flask) -> None:
    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.endpoint != "static":
            # Contact data must not linger in shared or browser caches.
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _register_error_pages(app: Flask) -> None:
    messages = {
        400: (
            _l("Bad request"),
            _l("The form could not be read. Go back, reload the page and try again."),
        ),
        403: (
            _l("Not allowed"),
            _l("Your role does not allow this page. Ask an administrator if you need it."),
        ),
        404: (_l("Not found"), _l("There is nothing at this address.")),
        413: (
            _l("File too large"),
            _l(
                "The file is larger than this installation accepts "
                "(CAMPAIGN_IMPORT_MAX_MB). Split it into smaller files."
            ),
        ),
    }

    def make_handler(code: int) -> Callable[[Exception], tuple[str, int]]:
        title, text = messages[code]

        def handler(_error: Exception) -> tuple[str, int]:
            return render_template("error.html", code=code, title=title, text=text), code

        return handler

    for code in messages:
        app.register_error_handler(code, make_handler(code))

    from flask_wtf.csrf import CSRFError

    @app.errorhandler(CSRFError)
    def _csrf_error(error: CSRFError) -> tuple[str, int]:
        text = _(
            "This form has expired or was sent from another site. "
            "Reload the page and submit it again."
        )
        return render_template("error.html", code=400, title=_("Form expired"), text=text), 400


@pass_context
def country_filter(_context: object, code: str | None) -> str:
    """The `country` filter (taking the context so Jinja never folds it at compile time)."""
    return country_label(code)


def country_label(code: str | None) -> str:
    """A country code as its name in the interface language ("KG" → "Кыргызстан")."""
    from campaign.i18n import current_language
    from campaign.letters.countries import load_country_names

    if not code:
        return ""
    return load_country_names().short(code, current_language()) or code


def _register_template_helpers(app: Flask) -> None:
    from campaign.labels import choices, label_filter
    from campaign.models import Role

    app.add_template_filter(label_filter, "label")
    app.add_template_filter(country_filter, "country")
    app.add_template_global(choices, "choices")

    # Planned areas are listed once here; an entry shows only when its endpoint exists
    # and the signed-in user's role reaches it.
    nav = [
        ("contacts.index", _l("Contacts"), Role.VIEWER),
        ("audiences.index", _l("Lists & segments"), Role.VIEWER),
        ("statements.index", _l("Statements"), Role.VIEWER),
        ("campaigns.index", _l("Campaigns"), Role.VIEWER),
        ("calendar.index", _l("Calendar"), Role.VIEWER),
        ("cases.index", _l("Cases"), Role.VIEWER),
        ("replies.index", _l("Replies"), Role.EDITOR),
        ("suppressions.index", _l("Suppressions"), Role.SENDER),
        ("smtp_accounts.index", _l("SMTP accounts"), Role.ADMIN),
        ("mailboxes.index", _l("Mailboxes"), Role.ADMIN),
        ("salutations.index", _l("Salutations"), Role.ADMIN),
        ("countries.index", _l("Countries"), Role.ADMIN),
        ("imports.new", _l("Import"), Role.EDITOR),
        ("devmail.index", _l("Dev mailbox"), Role.VIEWER),
        ("users.index", _l("Users"), Role.ADMIN),
        ("audit.index", _l("Audit log"), Role.ADMIN),
    ]

    @app.context_processor
    def _inject_navigation() -> dict[str, object]:
        present = [item for item in nav if item[0] in app.view_functions]
        return {"Role": Role, "nav_items": present}
