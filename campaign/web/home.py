"""The start page and the health check."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Contact, ContactList, Role, Segment
from campaign.web.access import allow, public

bp = Blueprint("home", __name__)


@bp.route("/")
@allow(Role.VIEWER)
def index() -> Any:
    counts = {
        "contacts": db.session.scalar(select(func.count(Contact.id))),
        "lists": db.session.scalar(select(func.count(ContactList.id))),
        "segments": db.session.scalar(select(func.count(Segment.id))),
    }
    return render_template("home/index.html", counts=counts)


@bp.route("/healthz")
@public
def health() -> Any:
    db.session.execute(select(1))
    return {"status": "ok"}
