"""`campaign load-demo`: fictional demo data loaded into an empty database.

With `campaign dev` (dev.py), the only code that imports campaign/demo/.
"""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext
from flask_babel import gettext as _

from campaign.commands import CommandError

DEMO_PASSWORD_ENV = "CAMPAIGN_DEMO_ADMIN_PASSWORD"  # noqa: S105 (a variable name)


def register(app: Flask) -> None:
    """Add `load-demo` to the app's commands (`dev` is on the group itself, see cli.py)."""
    app.cli.add_command(load_demo_command)


@click.command("load-demo")
@click.option(
    "--admin-password",
    envvar=DEMO_PASSWORD_ENV,
    default=None,
    help="Password for admin@example.org if it is created (default: random).",
)
@with_appcontext
def load_demo_command(admin_password: str | None) -> None:
    """Load fictional demo contacts, lists and segments (only into an empty database)."""
    from campaign.demo.loader import load_demo
    from campaign.extensions import db
    from campaign.services.accounts.users import UserError

    try:
        result = load_demo(admin_password=admin_password)
    except UserError as error:
        db.session.rollback()
        raise CommandError(str(error)) from None
    db.session.commit()
    if result.contacts:
        click.echo(
            _(
                "loaded %(contacts)d contacts, %(lists)d lists, %(segments)d segments, "
                "%(statements)d statements",
                contacts=result.contacts,
                lists=result.lists,
                segments=result.segments,
                statements=result.statements,
            )
        )
        from campaign.demo.sign_on import demo_sign_on_line

        click.echo(demo_sign_on_line())
    else:
        click.echo(_("there are contacts already; demo data not loaded"))
    if result.admin_email:
        click.echo(
            _(
                "created %(email)s with password: %(password)s",
                email=result.admin_email,
                password=result.admin_password,
            )
        )
