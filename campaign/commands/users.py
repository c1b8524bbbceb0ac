"""`campaign create-user`: staff accounts from the shell."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask_babel import gettext as _

from campaign.commands import CommandError, named
from campaign.models import Role


def register(app: Flask) -> None:
    app.cli.add_command(create_user_command)


@click.command("create-user")
@click.argument("email")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    default=Role.VIEWER.value,
    show_default=True,
    help="What the account may do.",
)
@click.option("--name", default="", help="Display name.")
def create_user_command(email: str, role: str, name: str) -> None:
    """Create a staff account; the password is prompted for, or read from stdin."""
    from campaign.extensions import db
    from campaign.services.users import UserError, create_user

    if sys.stdin.isatty():
        password = click.prompt(
            _("Password"),
            hide_input=True,
            confirmation_prompt=_("Repeat for confirmation"),
        )
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        user = create_user(email, password, Role(role), display_name=name)
    except UserError as error:
        db.session.rollback()
        raise CommandError(str(error)) from None
    db.session.commit()
    click.echo(
        _(
            "created %(email)s with role %(role)s",
            email=user.email,
            role=named(user.role, "role", in_sentence=True),
        )
    )
