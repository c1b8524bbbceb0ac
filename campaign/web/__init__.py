"""Blueprints, one per area; every view declares an access policy (campaign.web.access)."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, render_template

from campaign.web.access import enforce_access_policies


def register_blueprints(app: Flask) -> None:
    from campaign.web import audiences, audit, auth, contacts, devmail, home, imports, users

    for module in (auth, home, devmail, imports, contacts, audiences, users, audit):
        app.register_blueprint(module.bp)
    enforce_access_policies(app)
    _register_error_pages(app)
    _register_template_helpers(app)


def _register_error_pages(app: Flask) -> None:
    messages = {
        400: ("Bad request", "The form could not be read. Go back, reload the page and try again."),
        403: (
            "Not allowed",
            "Your role does not allow this page. Ask an administrator if you need it.",
        ),
        404: ("Not found", "There is nothing at this address."),
        413: (
            "File too large",
            "The file is larger than this installation accepts "
            "(CAMPAIGN_IMPORT_MAX_MB). Split it into smaller files.",
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
        text = (
            "This form has expired or was sent from another site. "
            "Reload the page and submit it again."
        )
        return render_template("error.html", code=400, title="Form expired", text=text), 400


def _register_template_helpers(app: Flask) -> None:
    from campaign.models import Role

    # Planned areas are listed once here; an entry shows only when its endpoint exists
    # and the signed-in user's role reaches it.
    nav = [
        ("contacts.index", "Contacts", Role.VIEWER),
        ("audiences.index", "Lists & segments", Role.VIEWER),
        ("imports.new", "Import", Role.EDITOR),
        ("devmail.index", "Dev mailbox", Role.VIEWER),
        ("users.index", "Users", Role.ADMIN),
        ("audit.index", "Audit log", Role.ADMIN),
    ]

    @app.context_processor
    def _inject_navigation() -> dict[str, object]:
        present = [item for item in nav if item[0] in app.view_functions]
        return {"Role": Role, "nav_items": present}
