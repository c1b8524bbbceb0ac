"""`campaign sign-on STATEMENT_ID`: a statement's sign-on address, whether it takes
signatures (or why not), its signatures by status, its invitations and reminder."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

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
    from campaign.services import sign_on, sign_on_invitations

    statement = db.session.get(Statement, statement_id)
    if statement is None:
        raise click.ClickException(f"there is no statement {statement_id}")
    page = sign_on.sign_on_of(statement)
    if page is None:
        raise click.ClickException(
            f"statement {statement_id} ({statement.title}) has no sign-on page; "
            "open one on the statement's page"
        )
    click.echo(f"statement:  {statement.id} {statement.title}")
    click.echo(f"address:    {sign_on_invitations.sign_on_address(page)}")
    reason = sign_on.closed_reason(page)
    click.echo(f"accepting:  {'no: ' + reason if reason else 'yes'}")
    if page.deadline is not None:
        click.echo(f"deadline:   {page.deadline:%Y-%m-%d %H:%M} UTC")
    counts = sign_on.signature_counts(page)
    click.echo("signatures: " + ", ".join(f"{status} {count}" for status, count in counts.items()))
    invited, reminded, total = db.session.execute(
        select(
            func.count(SignOnInvitation.invited_at),
            func.count(SignOnInvitation.reminded_at),
            func.count(),
        ).where(SignOnInvitation.sign_on_id == page.id)
    ).one()
    click.echo(f"invitations: {total} ({invited} e-mailed, {reminded} reminded)")
    reminder = sign_on_invitations.reminder_of(page)
    if reminder is not None and reminder.is_enabled and reminder.next_run_at is not None:
        click.echo(f"reminder:   {reminder.next_run_at:%Y-%m-%d %H:%M} UTC")
    else:
        click.echo("reminder:   none")
