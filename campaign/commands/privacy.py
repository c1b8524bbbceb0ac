"""`campaign subject-export EMAIL FILE`: an access request answered from the shell (0089)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask_babel import format_decimal
from flask_babel import gettext as _

from campaign.commands import CommandError


def register(app: Flask) -> None:
    app.cli.add_command(subject_export_command)


@click.command("subject-export")
@click.argument("email")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--include-others-messages",
    is_flag=True,
    help="Also put in the .eml files of received messages they did not send (an assistant's "
    "reply, say) and of answers to other addresses; review them before handing them over.",
)
def subject_export_command(email: str, file: Path, include_others_messages: bool) -> None:
    """Write everything stored about EMAIL (a contact, a signer) to FILE, a ZIP.

    FILE must not exist: it is never overwritten. The export is recorded in the audit log
    (the address masked). An address with nothing stored is said so, and FILE still gets
    a valid export that says so.
    """
    from campaign.extensions import db
    from campaign.i18n import current_language
    from campaign.services.privacy import erased_addresses, subject_export

    shown = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - shown[0] < 1 and done < total:
            return
        shown[0] = now
        percent = 100 * done // max(total, 1)
        line = _(
            "%(percent)3d%% %(done)s of %(total)s records written",
            percent=percent,
            done=format_decimal(done),
            total=format_decimal(total),
        )
        click.echo(f"\r{line}", err=True, nl=done >= total)

    def stop(signum: int, _frame: Any) -> None:
        # Unwinds through export_to_file, which removes its unfinished file.
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        summary = subject_export.export_to_file(
            email,
            file,
            language=current_language(),
            progress=progress,
            others_messages=include_others_messages,
        )
    except (subject_export.SubjectExportError, erased_addresses.ErasureKeyMissing) as error:
        db.session.rollback()
        raise CommandError(str(error)) from None
    except KeyboardInterrupt:
        db.session.rollback()
        raise CommandError(_("Stopped: %(file)s was not written.", file=file)) from None
    except BaseException:
        db.session.rollback()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    db.session.commit()
    if summary.is_empty:
        click.echo(
            _(
                "Nothing is stored about %(address)s; %(file)s says so.",
                address=email.strip(),
                file=file,
            )
        )
        return
    counts = summary.counts
    click.echo(
        _(
            "%(file)s written (%(size)s bytes): %(contacts)d contact record(s), %(letters)d "
            "letter(s), %(answers)d answer(s), %(replies)d received message(s), %(events)d "
            "tracking event(s), %(signatures)d signature(s), %(audit)d audit entries.",
            file=file,
            size=format_decimal(summary.size_bytes),
            contacts=counts["contacts"],
            letters=counts["letters"],
            answers=counts["answers"],
            replies=counts["replies"],
            events=counts["tracking_events"],
            signatures=counts["signatures"],
            audit=counts["audit_entries"],
        )
    )
