"""Blueprints, one per area; every view declares an access policy (campaign.web.access)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import (
    Flask,
    Response,
    current_app,
    has_request_context,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from campaign.i18n import use_visitor_language
from campaign.params import MAX_ROW_ID
from campaign.web.access import enforce_access_policies

# The blueprints strangers use (signers, recipients): their pages are in the reader's
# language and never lead to the staff sign-in.
PUBLIC_BLUEPRINTS = frozenset({"sign_on_public", "unsubscribe"})


def is_public_page() -> bool:
    """Whether this request is for a page of a public blueprint (sign-on, unsubscribe)."""
    return has_request_context() and request.blueprint in PUBLIC_BLUEPRINTS


class RowIdConverter(IntegerConverter):
    """`<int:…>` in a route: a number past any INTEGER id does not match, so it is a 404.

    PostgreSQL refuses to compare an INTEGER column with 99999999999 (a 500); campaign/params.py
    reads ids from forms and query strings with the same bound.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(*args, **kwargs)
        # The pattern itself stops at the bound: werkzeug counts a route whose pattern
        # matched as "another method allowed", so PATCH /contacts/99999999999 was a 405.
        self.regex = _ROW_ID_PATTERN


def _at_most(limit: str) -> str:
    """A pattern for the decimal numbers up to `limit` ("2147483647")."""
    choices = [rf"\d{{1,{len(limit) - 1}}}"] if len(limit) > 1 else []
    for i, digit in enumerate(limit):
        low = "1" if i == 0 else "0"
        if int(digit) > int(low):
            rest = len(limit) - i - 1
            choices.append(
                f"{limit[:i]}[{low}-{int(digit) - 1}]" + (rf"\d{{{rest}}}" if rest else "")
            )
    choices.append(limit)
    return "(?:" + "|".join(choices) + ")"


_ROW_ID_PATTERN = _at_most(str(MAX_ROW_ID))


def register_blueprints(app: Flask) -> None:
    from campaign.web import devmail, home, webhooks
    from campaign.web.accounts import account, audit, auth, two_factor, users
    from campaign.web.contacts import audiences, contacts, imports, suppressions
    from campaign.web.contacts import tools as contact_tools
    from campaign.web.privacy import backups as privacy_backups
    from campaign.web.privacy import erasure as privacy_erasure
    from campaign.web.privacy import exports as privacy_exports
    from campaign.web.privacy import restore_hold as privacy_restore_hold
    from campaign.web.privacy import retention as privacy_retention
    from campaign.web.replies import dashboard, mailboxes, replies
    from campaign.web.schedules import calendar, cases, schedule_runs, schedules
    from campaign.web.sending import campaigns, smtp_accounts, unsubscribe
    from campaign.web.sign_on import admin as sign_on_admin
    from campaign.web.sign_on import invitations as sign_on_invitations
    from campaign.web.sign_on import public as sign_on_public
    from campaign.web.statements import (
        countries,
        organisation,
        presend,
        previews,
        salutations,
        statements,
    )

    app.url_map.converters["int"] = RowIdConverter
    for module in (
        auth,
        two_factor,
        account,
        home,
        devmail,
        imports,
        contact_tools,
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
        organisation,
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
        webhooks,
        privacy_exports,
        privacy_retention,
        privacy_backups,
        privacy_erasure,
        privacy_restore_hold,
    ):
        app.register_blueprint(module.bp)
    from campaign.web.api import register_api

    register_api(app)
    from campaign.web.input_guard import install_input_guard

    install_input_guard(app)
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
        405: (
            _l("Not possible here"),
            _l(
                "This address cannot be opened this way. "
                "Go back and use the page's links and buttons."
            ),
        ),
        413: (
            _l("File too large"),
            _l(
                "The file is larger than this installation accepts "
                "(CAMPAIGN_IMPORT_MAX_MB). Split it into smaller files."
            ),
        ),
        500: (
            _l("Something went wrong"),
            _l(
                "The server could not finish this request. Try again in a moment; if it "
                "happens again, tell an administrator."
            ),
        ),
    }

    def make_handler(code: int) -> Callable[[Exception], tuple[str, int]]:
        title, text = messages[code]

        def handler(_error: Exception) -> Any:
            from campaign.web.api import is_api_request

            if is_api_request():
                # Under /api/v1 an error is a problem document even where no API view
                # answered (an unknown address, a method a route does not take: 405 with
                # its Allow header), in the API's words rather than the pages'.
                from campaign.web.api import problem_for
                from campaign.web.api.problems import problem_response

                if code == 500:
                    from campaign.extensions import db

                    db.session.rollback()
                    return problem_response(code, str(text))
                if isinstance(_error, HTTPException):
                    return problem_for(_error)
                return problem_response(code)
            if code == 500:
                # Whatever failed may have left the transaction unusable (PostgreSQL refuses
                # every statement after an error): the page itself reads the database.
                # The exception is logged by Flask, never shown.
                from campaign.extensions import db

                db.session.rollback()
            return render_template("error.html", code=code, title=title, text=text), code

        return handler

    for code in messages:
        app.register_error_handler(code, make_handler(code))

    from flask_wtf.csrf import CSRFError

    @app.errorhandler(CSRFError)
    def _csrf_error(error: CSRFError) -> tuple[str, int]:
        back = ""
        if is_public_page():
            # A signer's or recipient's form: their language, not the staff's or browser's,
            # and a way back to the page the form was on rather than to the staff sign-in.
            language = use_visitor_language()
            back = _page_of_the_form(language)
        text = _(
            "This form has expired or was sent from another site. "
            "Reload the page and submit it again."
        )
        page = render_template(
            "error.html", code=400, title=_("Form expired"), text=text, back=back
        )
        return page, 400


def _page_of_the_form(language: str) -> str:
    """The public page at this address (the GET the refused form was sent from), or ""."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        endpoint, values = adapter.match(request.path, method="GET")
    except HTTPException:
        return ""
    if endpoint.split(".")[0] not in PUBLIC_BLUEPRINTS:
        return ""
    return url_for(endpoint, **values, lang=language)


def _register_template_helpers(app: Flask) -> None:
    from campaign.labels import choices, label_filter
    from campaign.models import Role
    from campaign.web.statements import country_names

    app.add_template_filter(label_filter, "label")
    country_names.install_template_helpers(app)
    app.add_template_global(choices, "choices")
    app.add_template_global(is_public_page, "is_public_page")

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
        ("webhooks.index", _l("Webhooks"), Role.ADMIN),
        ("organisation.index", _l("Organisation"), Role.ADMIN),
        ("salutations.index", _l("Salutations"), Role.ADMIN),
        ("countries.index", _l("Countries"), Role.ADMIN),
        ("imports.new", _l("Import"), Role.EDITOR),
        ("devmail.index", _l("Dev mailbox"), Role.SENDER),
        ("users.index", _l("Users"), Role.ADMIN),
        ("audit.index", _l("Audit log"), Role.ADMIN),
        ("subject_exports.index", _l("Access requests"), Role.ADMIN),
        ("erasure.index", _l("Erase a person"), Role.ADMIN),
        ("retention.index", _l("Retention"), Role.ADMIN),
        ("backups.index", _l("Backups"), Role.ADMIN),
    ]

    @app.context_processor
    def _inject_navigation() -> dict[str, object]:
        present = [item for item in nav if item[0] in app.view_functions]
        return {"Role": Role, "nav_items": present}
