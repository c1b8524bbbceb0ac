"""Letter commands: `campaign check` (the pre-send report over an audience)."""

from __future__ import annotations

import sys
from typing import NoReturn

import click
from flask import Flask
from flask_babel import gettext as _


def register(app: Flask) -> None:
    app.cli.add_command(check_command)
    app.cli.add_command(render_command)


def _fail(message: str) -> NoReturn:
    """Stop with exit status 2: the command was asked for something that does not exist."""
    click.echo(_("Error: %(message)s", message=message), err=True)
    raise click.exceptions.Exit(2)


@click.command("check")
@click.argument("statement_id", type=int)
@click.option("--list", "list_name", default=None, help="Check the members of this list.")
@click.option("--segment", "segment_name", default=None, help="Check the contacts of a segment.")
@click.option("--lang", "language", default=None, help="Check everybody's letter in this language.")
def check_command(
    statement_id: int, list_name: str | None, segment_name: str | None, language: str | None
) -> None:
    """Render STATEMENT_ID for every recipient and print what is wrong; nothing is sent.

    One line per problem of the text, read once per distinct letter ("statement 6 “Title”
    (English), line 12 — Problem: message"), one per recipient's problem ("address —
    Problem: message"), then a summary line. Exits 0 when
    there are no errors (warnings allowed), 1 when some letter has an error, 2 when the
    statement, list or segment does not exist.
    """

    from campaign.extensions import db
    from campaign.letters.letter import LanguageUnavailable
    from campaign.models import Statement
    from campaign.services.contacts import lists, segments
    from campaign.services.statements import presend
    from campaign.services.statements.salutation_rules import current_rule_set

    if (list_name is None) == (segment_name is None):
        _fail(_("name the recipients with --list NAME or --segment NAME (one of them)"))
    statement = db.session.get(Statement, statement_id)
    if statement is None:
        _fail(_("there is no statement %(id)s", id=statement_id))
    if list_name is not None:
        contact_list = lists.find_list(list_name)
        if contact_list is None:
            _fail(_("there is no list called %(name)s", name=repr(list_name)))
        audience = lists.members_query(contact_list)
    else:
        segment = segments.find_segment(str(segment_name))
        if segment is None:
            _fail(_("there is no segment called %(name)s", name=repr(segment_name)))
        audience = segments.contacts_matching(segment.definition)
    try:
        report = presend.check_audience(
            statement, audience, language=language, rules=current_rule_set()
        )
    except LanguageUnavailable as error:
        _fail(str(error))
    finally:
        db.session.rollback()  # the check writes nothing; make sure nothing is left pending
    for line in presend.problem_lines(report):
        click.echo(str(line))
    click.echo(report.summary())
    raise click.exceptions.Exit(1 if report.has_errors else 0)


@click.command("render")
@click.argument("statement_id", type=int)
@click.argument("contact_email")
@click.option("--lang", "language", default=None, help="Write the letter in this language.")
def render_command(statement_id: int, contact_email: str, language: str | None) -> None:
    """Print the message STATEMENT_ID makes for CONTACT_EMAIL exactly as it would be sent.

    Headers and MIME body, CRLF line ends, to stdout; problems go to stderr. Without
    --lang the language is the first of the contact's that the statement has. Exits 1
    when the letter has an error (nothing printed), 2 when something does not exist.
    """
    from campaign.extensions import db
    from campaign.letters.letter import LanguageUnavailable
    from campaign.models import Statement
    from campaign.services.contacts.contacts import find_by_email
    from campaign.services.statements.complete_letters import compose_letter

    try:
        statement = db.session.get(Statement, statement_id)
        if statement is None:
            _fail(_("there is no statement %(id)s", id=statement_id))
        contact = find_by_email(contact_email)
        if contact is None:
            _fail(
                _("there is no contact with the address %(address)s", address=repr(contact_email))
            )
        try:
            composed = compose_letter(statement, contact, language=language)
        except LanguageUnavailable as error:
            _fail(str(error))
        for problem in composed.letter.problems:
            if problem.severity == "error":
                line = _("error: %(code)s: %(message)s", code=problem.code, message=problem.message)
            else:
                line = _(
                    "warning: %(code)s: %(message)s", code=problem.code, message=problem.message
                )
            click.echo(line, err=True)
        if composed.message is None:
            reason = composed.error
            if composed.letter.has_errors:
                reason = _("the letter cannot be sent as it is; nothing printed")
            click.echo(_("Error: %(message)s", message=reason), err=True)
            raise click.exceptions.Exit(1)
        data = composed.message
    finally:
        db.session.rollback()  # rendering writes nothing
    sys.stdout.flush()
    sys.stdout.buffer.write(data)  # the bytes themselves: CRLF, 8-bit, as SMTP gets them
    sys.stdout.buffer.flush()
