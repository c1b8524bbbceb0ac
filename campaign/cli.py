"""The `campaign` command: Flask's CLI group (db, run, shell…) plus our own commands."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

from campaign.config import ConfigError


def _create_app() -> Flask:
    from campaign import create_app

    try:
        return create_app()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


@click.group(
    cls=FlaskGroup,
    create_app=_create_app,
    add_version_option=False,
    load_dotenv=False,
    set_debug_flag=False,
)
def cli() -> None:
    """Advocacy mailing and campaign automation."""


# On the group itself, not the app: it sets the development defaults the app is built with.
from campaign.commands.dev import dev_command  # noqa: E402

cli.add_command(dev_command)


def main() -> None:
    cli.main(prog_name="campaign")


def register_commands(app: Flask) -> None:
    from campaign.commands.contacts import register as register_contacts
    from campaign.commands.dev import register as register_dev
    from campaign.models import Role

    register_contacts(app)
    register_dev(app)

    @app.cli.command("create-user")
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
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:
            password = sys.stdin.readline().rstrip("\r\n")
        try:
            user = create_user(email, password, Role(role), display_name=name)
        except UserError as error:
            db.session.rollback()
            raise click.ClickException(str(error)) from None
        db.session.commit()
        click.echo(f"created {user.email} with role {user.role}")
