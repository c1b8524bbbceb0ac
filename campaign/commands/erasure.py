"""`campaign erase EMAIL --yes`: erase a person on request from the shell (decision 0090)."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask_babel import gettext as _

from campaign.commands import CommandError


def register_erasure(app: Flask) -> None:
    app.cli.add_command(erase_command)


def _summary_lines(about: object) -> list[str]:
    from campaign.services.privacy.erasure import StoredAbout

    assert isinstance(about, StoredAbout)
    return [
        _(
            "contact records: %(count)d (in the trash: %(trashed)d)",
            count=len(about.contact_ids),
            trashed=about.trashed_contacts,
        ),
        _("list memberships: %(count)d", count=about.lists),
        _("sign-on signatures: %(count)d", count=about.signatures),
        _("letters in the ledger (kept, anonymised): %(count)d", count=about.letters),
        _("replies and bounces (bodies erased): %(count)d", count=about.replies),
        _("tracking events: %(count)d", count=about.tracking_events),
        _(
            "records merged into theirs with other addresses (erased too): %(count)d",
            count=about.merged_other,
        ),
    ]


@click.command("erase")
@click.argument("email", metavar="EMAIL|-")
@click.option(
    "--yes",
    "confirmed",
    is_flag=True,
    help="Erase without asking again (required: an erasure cannot be undone).",
)
def erase_command(email: str, confirmed: bool) -> None:
    """Erase everything stored about the person with this address, keeping only a keyed
    hash on the suppression list so that nobody writes to them again.

    An address nothing is stored about gets the hash too, so it is never written to. Letters
    already sent to others that name the person as a co-signer are not rewritten.

    EMAIL "-" reads the address from the standard input (first line), so that it stays out
    of the shell's history and the process list.
    """
    from campaign.extensions import db
    from campaign.services.privacy import erased_addresses, erasure

    if email == "-":
        email = sys.stdin.readline().strip()
    try:
        about = erasure.what_is_stored(email)
    except erasure.ErasureError as error:
        raise CommandError(error.message) from None
    except erased_addresses.ErasureKeyMissing as error:
        raise CommandError(str(error)) from None
    why_not = erasure.refusal(about)
    if why_not:
        raise CommandError(why_not)
    if about.is_stored:
        click.echo(_("Stored about this address:"))
        for line in _summary_lines(about):
            click.echo(f"  {line}")
    elif about.is_erased:
        click.echo(_("This address was erased before; nothing is stored about it."))
        return
    else:
        click.echo(
            _(
                "Nothing is stored about this address. Its keyed hash will be added to the "
                "suppression list so that it is never written to."
            )
        )
    still_naming = erasure.still_naming_notice(about)
    if still_naming:
        click.echo(still_naming)
    if not confirmed:
        raise CommandError(
            _("An erasure cannot be undone: run the command again with --yes to erase.")
        )
    try:
        result = erasure.erase_person(email)
    except erasure.ErasureError as error:
        db.session.rollback()
        raise CommandError(error.message) from None
    except erased_addresses.ErasureKeyMissing as error:
        db.session.rollback()
        raise CommandError(str(error)) from None
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()
    erasure.scrub_storage()
    if result.already_erased:
        click.echo(_("This address was erased before; nothing is stored about it."))
        return
    click.echo(
        _(
            "Erased. The suppression list keeps only a keyed hash (%(prefix)s…): nothing will "
            "be written to this address again. Letters already sent to others that name this "
            "person as a co-signer are not rewritten.",
            prefix=result.hash_prefix,
        )
    )
