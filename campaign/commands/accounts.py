"""`campaign create-user`, `set-password` and `reset-two-factor`: staff accounts from the shell."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask_babel import gettext as _

from campaign.commands import CommandError, named
from campaign.models import Role


def register(app: Flask) -> None:
    app.cli.add_command(create_user_command)
    app.cli.add_command(set_password_command)
    app.cli.add_command(reset_two_factor_command)


def _read_password() -> str:
    """Prompted twice on a terminal; else one line of standard input (a script, a pipe)."""
    if sys.stdin.isatty():
        password: str = click.prompt(
            _("Password"),
            hide_input=True,
            confirmation_prompt=_("Repeat for confirmation"),
        )
        return password
    return sys.stdin.readline().rstrip("\r\n")


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
    from campaign.services.accounts.users import UserError, create_user

    password = _read_password()
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


@click.command("set-password")
@click.argument("email")
def set_password_command(email: str) -> None:
    """Set an account's password (prompted, or one line of stdin); its sessions end."""
    from campaign.extensions import db
    from campaign.services.accounts.users import UserError, find_user, set_password

    user = find_user(email)
    if user is None:
        raise CommandError(_("There is no account for %(email)s.", email=email.strip()))
    password = _read_password()
    try:
        set_password(user, password)
    except UserError as error:
        db.session.rollback()
        raise CommandError(str(error)) from None
    db.session.commit()
    click.echo(_("The password of %(email)s is set; their sessions have ended.", email=user.email))


@click.command("reset-two-factor")
@click.argument("email")
def reset_two_factor_command(email: str) -> None:
    """Remove an account's two-factor and recovery codes (a lost phone); its sessions end."""
    from campaign.extensions import db
    from campaign.services.accounts.two_factor import reset_two_factor
    from campaign.services.accounts.users import find_user

    user = find_user(email)
    if user is None:
        raise CommandError(_("There is no account for %(email)s.", email=email.strip()))
    reset_two_factor(user)
    db.session.commit()
    click.echo(
        _(
            "The two-factor authentication of %(email)s is removed; their sessions have ended.",
            email=user.email,
        )
    )
