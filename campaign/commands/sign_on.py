"""`campaign sign-on STATEMENT_ID`: a statement's sign-on address, whether it takes
signatures (or why not), its signatures by status, its invitations and reminder."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from flask_babel import gettext as _

from campaign.commands import CommandError, named

if TYPE_CHECKING:
    from flask import Flask


def register(app: Flask) -> None:
    app.cli.add_command(sign_on_command)


@click.command("sign-on")
@click.argument("statement_id", type=int)
def sign_on_command(statement_id: int) -> None:
    """Show a statement's sign-on page: address, open or closed, counts by status."""
    from sqlalchemy import func, select

    from campaign.extensions import db
    from campaign.models import SignOnInvitation, Statement
    from campaign.services.sign_on import invitations as sign_on_invitations
    from campaign.services.sign_on import pages as sign_on

    statement = db.session.get(Statement, statement_id)
    if statement is None:
        raise CommandError(_("there is no statement %(id)s", id=statement_id))
    page = sign_on.sign_on_of(statement)
    if page is None:
        raise CommandError(
            _(
                "statement %(id)s (%(title)s) has no sign-on page; "
                "open one on the statement's page",
                id=statement_id,
                title=statement.title,
            )
        )
    lines: list[tuple[str, str]] = [
        (_("statement:"), f"{statement.id} {statement.title}"),
        (_("address:"), sign_on_invitations.sign_on_address(page)),
    ]
    reason = sign_on.closed_reason(page)
    accepting = _("no: %(reason)s", reason=reason) if reason else _("yes")
    lines.append((_("accepting:"), accepting))
    if page.deadline is not None:
        lines.append((_("deadline:"), f"{page.deadline:%Y-%m-%d %H:%M} UTC"))
    counts = sign_on.signature_counts(page)
    signatures = ", ".join(
        f"{named(status, 'signature_status', in_sentence=True)} {count}"
        for status, count in counts.items()
    )
    lines.append((_("signatures:"), signatures))
    invited, reminded, total = db.session.execute(
        select(
            func.count(SignOnInvitation.invited_at),
            func.count(SignOnInvitation.reminded_at),
            func.count(),
        ).where(SignOnInvitation.sign_on_id == page.id)
    ).one()
    invitations = _(
        "%(total)d (%(invited)d e-mailed, %(reminded)d reminded)",
        total=total,
        invited=invited,
        reminded=reminded,
    )
    lines.append((_("invitations:"), invitations))
    reminder = sign_on.reminder_of(page)
    if reminder is not None and reminder.is_enabled and reminder.next_run_at is not None:
        lines.append((_("reminder:"), f"{reminder.next_run_at:%Y-%m-%d %H:%M} UTC"))
    else:
        lines.append((_("reminder:"), _("none")))
    # The values line up after the labels, as they always have in English ("statement:  1",
    # "signatures: …"), where "invitations:" sticks out by one.
    width = max(len(text) for text, _value in lines if text != _("invitations:"))
    for text, value in lines:
        click.echo(f"{text:<{width}} {value}")
