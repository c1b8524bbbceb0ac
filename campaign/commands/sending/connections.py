"""`campaign test-smtp` and `campaign test-mailbox`: connect, secure, log in, say what worked."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import with_appcontext
from flask_babel import gettext as _

from campaign.commands import CommandError


def register(app: Flask) -> None:
    app.cli.add_command(test_smtp_command)
    app.cli.add_command(test_mailbox_command)


def _print(report: object) -> None:
    from campaign.services.sending.connection_tests import ConnectionReport

    assert isinstance(report, ConnectionReport)
    for step in report.steps:
        mark = _("worked") if step.is_ok else _("FAILED")
        line = f"  [{mark}] {step.name}"
        click.echo(f"{line}: {step.detail}" if step.detail else line)
    if report.is_ok:
        click.echo(_("The connection works; no message was sent."))
    else:
        click.echo(_("The connection does not work; no message was sent."), err=True)


@click.command("test-smtp")
@click.argument("account")
@click.option(
    "--from",
    "sender",
    default="",
    help="Address to try as the sender (default: CAMPAIGN_MAIL_DEFAULT_SENDER).",
)
@with_appcontext
def test_smtp_command(account: str, sender: str) -> None:
    """Test SMTP account ACCOUNT ("default": CAMPAIGN_MAIL_*) without sending: exit 1 if it fails.

    Connects, negotiates TLS as the account says, logs in, and asks the relay whether it takes
    mail from the sender (MAIL FROM, then RSET: no recipient, no message).
    """
    from campaign.extensions import db
    from campaign.services.sending.connection_tests import check_smtp_connection
    from campaign.services.sending.smtp_accounts import find_account

    found = None
    if account != "default":
        found = find_account(account)
        if found is None:
            raise CommandError(_("no SMTP account named %(name)s", name=account))
    report = check_smtp_connection(found, sender)
    db.session.commit()
    click.echo(_("Testing %(server)s:", server=report.target))
    _print(report)
    if not report.is_ok:
        sys.exit(1)


@click.command("test-mailbox")
@click.argument("name")
@with_appcontext
def test_mailbox_command(name: str) -> None:
    """Test IMAP mailbox NAME: connect, TLS, log in, open its folder; exit 1 if it fails."""
    from campaign.extensions import db
    from campaign.services.replies.mailboxes import find_mailbox
    from campaign.services.sending.connection_tests import check_mailbox_connection

    mailbox = find_mailbox(name)
    if mailbox is None:
        raise CommandError(_("no mailbox named %(name)s", name=name))
    report = check_mailbox_connection(mailbox)
    db.session.commit()
    click.echo(_("Testing %(server)s:", server=report.target))
    _print(report)
    if not report.is_ok:
        sys.exit(1)
