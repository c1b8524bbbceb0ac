"""Letter preview: any recipient of an audience, every part side by side, a test to oneself.

A statement that loops `{% for case in cases %}` merges the cases linked to a campaign; the
preview takes them from a campaign that uses the statement (by default the most recent
one with linked cases), so the letter shows as that campaign would send it; the rule is
services/statements/previews.py's `cases_campaign`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from email import message_from_bytes, policy
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import Select

from campaign.extensions import db
from campaign.i18n import language_name
from campaign.letters.letter import LanguageUnavailable
from campaign.models import Campaign, Contact, Role, Statement
from campaign.params import row_id
from campaign.services.contacts.audiences import audience_choices, find_audience
from campaign.services.schedules.cases import cases_context
from campaign.services.sending.letter_tests import LetterNotSent, send_preview_test_letter
from campaign.services.statements.complete_letters import ComposedLetter, compose_letter
from campaign.services.statements.previews import (
    MAX_RESULTS,
    NO_CASES,
    campaign_audience,
    campaigns_using,
    cases_campaign,
    clean_query,
    neighbours,
    recipient_warnings,
    search_recipients,
)
from campaign.web.access import allow, signed_in_user

bp = Blueprint("previews", __name__, url_prefix="/statements/<int:statement_id>/preview")

# The HTML part is shown in a sandboxed frame: its inline styles may apply, nothing else
# (the preview's and the statement editor's live letter).
FRAME_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; sandbox"
)
# The headers shown above the letter, each named as a mail client in the reader's
# interface language names it ("От", "Кому"); the technical ones keep their names.
_HEADERS_SHOWN = {
    "From": _l("From"),
    "To": _l("To"),
    "Cc": _l("Cc"),
    "Reply-To": _l("Reply to"),
    "Subject": _l("Subject"),
    "Date": _l("Date"),
    "Message-ID": "Message-ID",
    "Content-Language": _l("Content language"),
}


def _header_value(name: str, value: str) -> str:
    """A header as the page shows it: the letter's language named, not tagged ("ru")."""
    if name == "Content-Language":
        return ", ".join(language_name(tag.strip()) for tag in value.split(",") if tag.strip())
    return value


def _found_contact(raw: str | None) -> Contact:
    """The contact a preview is for; 404 for a bad id, an unknown or a trashed contact (the
    trash is out of every preview)."""
    contact_id = row_id(raw)
    contact = db.session.get(Contact, contact_id) if contact_id is not None else None
    if contact is None or contact.deleted_at is not None:
        abort(404)
    return contact


def _asked_contact(raw: str | None) -> Contact | None:
    """The contact asked for, None when none is asked (the page takes the first one)."""
    return _found_contact(raw) if raw else None


def _contact() -> Contact:
    return _found_contact(request.args.get("contact"))


def _compose(
    statement: Statement,
    contact: Contact,
    *,
    with_pdf: bool = False,
    cases_from: Campaign | None = None,
) -> ComposedLetter:
    language = request.args.get("lang") or None
    cases = cases_context(cases_from) if cases_from is not None else []
    try:
        return compose_letter(statement, contact, language=language, with_pdf=with_pdf, cases=cases)
    except LanguageUnavailable:
        abort(404)


def _args_campaign(statement: Statement) -> Campaign | None:
    return cases_campaign(statement, request.args.get("cases_from"))


@dataclass(frozen=True)
class _Audience:
    key: str
    query: Select[Any]


def _audience_choices(using: list[tuple[Campaign, bool]]) -> list[tuple[str, str]]:
    """The campaigns sending this statement first (their audience as it is now), then every
    list and segment."""
    campaigns = [
        (f"campaign:{campaign.id}", _("Campaign: %(name)s", name=campaign.name))
        for campaign, _linked in using
    ]
    return campaigns + audience_choices()


def _find_audience(key: str, using: list[tuple[Campaign, bool]]) -> _Audience | None:
    kind, _sep, raw = key.partition(":")
    if kind == "campaign":
        chosen = row_id(raw)
        campaign = next((c for c, _linked in using if c.id == chosen), None)
        return _Audience(key, campaign_audience(campaign)) if campaign is not None else None
    found = find_audience(key)
    return _Audience(found.key, found.query) if found is not None else None


def _chosen_audience(
    choices: list[tuple[str, str]], using: list[tuple[Campaign, bool]]
) -> _Audience | None:
    # By default the newest campaign sending the statement: the preview shows whom it
    # writes to, read again at every load, so a change of its audience shows at once.
    raw = request.args.get("audience") or (choices[0][0] if choices else "")
    return _find_audience(raw, using)


@bp.route("/")
@allow(Role.EDITOR)
def show(statement_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    using = campaigns_using(statement)
    choices = _audience_choices(using)
    audience = _chosen_audience(choices, using)
    q = clean_query(request.args.get("q"))
    found = search_recipients(audience.query, q) if audience is not None else None
    recipients = found.contacts if found is not None else []
    contact = _asked_contact(request.args.get("contact"))
    if contact is None and recipients:
        contact = recipients[0]
    before = after = None
    if contact is not None and audience is not None:
        before, after = neighbours(audience.query, contact, q)
    cases_from = cases_campaign(statement, request.args.get("cases_from"), using)
    composed = _compose(statement, contact, cases_from=cases_from) if contact is not None else None
    warnings = (
        recipient_warnings(
            statement,
            contact,
            language=request.args.get("lang") or None,
            audience=audience.query if audience is not None else None,
        )
        if contact is not None
        else []
    )
    headers: list[tuple[str, str]] = []
    if composed is not None and composed.message is not None:
        parsed = message_from_bytes(composed.message, policy=policy.default)
        headers = [
            (str(shown), _header_value(name, str(parsed[name])))
            for name, shown in _HEADERS_SHOWN.items()
            if parsed[name]
        ]
    return render_template(
        "previews/show.html",
        statement=statement,
        audiences=choices,
        audience=audience,
        recipients=recipients,
        has_more=found.has_more if found is not None else False,
        q=q,
        contact=contact,
        before=before,
        after=after,
        composed=composed,
        warnings=warnings,
        headers=headers,
        language=request.args.get("lang", ""),
        max_results=MAX_RESULTS,
        campaigns_using=using,
        cases_from=cases_from,
        # Passed on to the parts and the test letter, so they merge the same cases.
        cases_arg=str(cases_from.id) if cases_from is not None else NO_CASES,
    )


@bp.route("/recipients")
@allow(Role.EDITOR)
def recipients(statement_id: int) -> Any:
    """The recipient list for a search and an audience, as the page's fragment (for the
    search box and the audience chooser, which refresh it as one types or chooses)."""
    statement = db.get_or_404(Statement, statement_id)
    using = campaigns_using(statement)
    audience = _chosen_audience(_audience_choices(using), using)
    q = clean_query(request.args.get("q"))
    found = search_recipients(audience.query, q) if audience is not None else None
    contact = _asked_contact(request.args.get("contact"))
    before = after = None
    if contact is not None and audience is not None:
        # The neighbours in this search and audience: the list and its links stay in step.
        before, after = neighbours(audience.query, contact, q)
    return render_template(
        "previews/_recipients.html",
        statement=statement,
        audience=audience,
        recipients=found.contacts if found is not None else [],
        has_more=found.has_more if found is not None else False,
        q=q,
        contact=contact,
        before=before,
        after=after,
        language=request.args.get("lang", ""),
        max_results=MAX_RESULTS,
        cases_arg=request.args.get("cases_from") or None,
    )


def _part_args(contact: Contact) -> dict[str, Any]:
    return {
        "contact": contact.id,
        "lang": request.args.get("lang") or None,
        "cases_from": request.args.get("cases_from") or None,
    }


@bp.route("/html")
@allow(Role.EDITOR)
def html_part(statement_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    composed = _compose(statement, _contact(), cases_from=_args_campaign(statement))
    response = Response(composed.parts.html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = FRAME_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.route("/letter.pdf")
@allow(Role.EDITOR)
def pdf(statement_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    composed = _compose(statement, _contact(), with_pdf=True, cases_from=_args_campaign(statement))
    if composed.pdf is None:
        flash(composed.error or _("The letter has errors, so there is no PDF."), "error")
        return redirect(
            url_for("previews.show", statement_id=statement_id, **_part_args(_contact()))
        )
    # send_file writes a non-ASCII name as filename*=UTF-8''… (RFC 6266) beside an ASCII one.
    response = send_file(
        io.BytesIO(composed.pdf),
        mimetype="application/pdf",
        as_attachment=True,
        download_name=composed.pdf_filename,
        max_age=0,
    )
    response.headers["Cache-Control"] = "no-store"  # a contact's letter: never kept
    return response


@bp.route("/message.eml")
@allow(Role.EDITOR)
def message(statement_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    composed = _compose(statement, _contact(), cases_from=_args_campaign(statement))
    if composed.message is None:
        abort(404)
    response = Response(composed.message, mimetype="message/rfc822")
    response.headers["Content-Disposition"] = 'attachment; filename="letter.eml"'
    return response


@bp.route("/send-test", methods=["POST"])
@allow(Role.EDITOR)
def send_test(statement_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    contact = _found_contact(request.form.get("contact"))
    language = request.form.get("lang") or None
    back = url_for(
        "previews.show",
        statement_id=statement.id,
        contact=contact.id,
        lang=language,
        audience=request.form.get("audience") or None,
        q=request.form.get("q") or None,
        cases_from=request.form.get("cases_from") or None,
    )
    cases_from = cases_campaign(statement, request.form.get("cases_from"))
    cases = cases_context(cases_from) if cases_from is not None else []
    try:
        send_preview_test_letter(
            statement,
            contact,
            to=current_user.email,
            language=language,
            cases=cases,
            actor=signed_in_user(),
        )
    except LanguageUnavailable:
        abort(404)
    except LetterNotSent as error:
        flash(_("Not sent: %(reason)s.", reason=str(error)), "error")
        return redirect(back)
    db.session.commit()
    flash(_("A test of this letter was sent to %(email)s.", email=current_user.email), "success")
    return redirect(back)
