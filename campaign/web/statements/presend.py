"""The pre-send check page: every recipient of a list or segment, and what is wrong per letter."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template, request

from campaign.extensions import db
from campaign.letters.letter import LanguageUnavailable
from campaign.models import Role, Statement
from campaign.services.contacts.audiences import audience_choices, find_audience
from campaign.services.statements.presend import PresendReport, check_audience
from campaign.services.statements.salutation_rules import current_rule_set
from campaign.web.access import allow

bp = Blueprint("presend", __name__, url_prefix="/statements/<int:statement_id>/check")

# The check covers the whole audience; the page lists this many problems at most.
MAX_ROWS = 2000


@bp.route("/")
@allow(Role.EDITOR)
def show(statement_id: int) -> Any:
    statement = db.session.get(Statement, statement_id)
    if statement is None:
        abort(404)
    choices = audience_choices()
    key = request.args.get("audience", "")
    language = request.args.get("lang", "")
    audience = find_audience(key) if key else None
    if key and audience is None:
        abort(404)
    report: PresendReport | None = None
    language_error = ""
    if audience is not None:
        try:
            report = check_audience(
                statement, audience.query, language=language or None, rules=current_rule_set()
            )
        except LanguageUnavailable as error:
            language_error = str(error)
    return render_template(
        "presend/show.html",
        statement=statement,
        audiences=choices,
        audience=audience,
        language=language,
        language_error=language_error,
        report=report,
        # Most used first; a tie in the order of the language tags.
        languages=sorted(report.languages.items(), key=lambda item: (-item[1], item[0]))
        if report is not None
        else [],
        max_rows=MAX_ROWS,
    )
