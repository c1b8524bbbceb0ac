"""The start page (what needs the signed-in person now; the first-run steps) and the health
check, and the favicon browsers ask for at the site's root."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template, send_from_directory
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Role
from campaign.services import attention
from campaign.services.paging import page_numbers
from campaign.services.schedules.cases import record_page_reveals
from campaign.web.access import allow, may, public, signed_in_user

bp = Blueprint("home", __name__)

# The shared pager (templates/_paging.html) asks which page numbers to link to.
bp.add_app_template_global(page_numbers, "page_numbers")

# A day: the icon changes with a release at most, and a stale one harms nobody.
FAVICON_MAX_AGE = 86_400


@bp.route("/")
@allow(Role.VIEWER)
def index() -> Any:
    user = signed_in_user()
    steps = attention.setup_steps()
    page = render_template(
        "home/index.html",
        steps=steps,
        needs_setup=attention.needs_setup(steps),
        is_admin=may(Role.ADMIN),
        groups=attention.what_needs_attention(user),
    )
    # Anniversaries name high-risk people in full for admins: audited once per page.
    if record_page_reveals(user, page="home"):
        db.session.commit()
    return page


@bp.route("/favicon.ico")
@public
def favicon() -> Any:
    assert current_app.static_folder is not None
    return send_from_directory(
        current_app.static_folder,
        "favicon.ico",
        mimetype="image/vnd.microsoft.icon",
        max_age=FAVICON_MAX_AGE,
    )


@bp.route("/healthz")
@public
def health() -> Any:
    db.session.execute(select(1))
    return {"status": "ok"}
