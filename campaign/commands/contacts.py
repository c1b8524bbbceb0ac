"""`campaign import-contacts` and `campaign export-contacts`: contact files from the shell."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from flask import Flask
from flask_babel import format_number, ngettext
from flask_babel import gettext as _

from campaign.commands import CommandError

# A progress line is worth printing only when an import takes more than a moment.
_PROGRESS_FROM_LINES = 5000


def register(app: Flask) -> None:
    app.cli.add_command(import_contacts_command)
    app.cli.add_command(export_contacts_command)


@click.command("import-contacts")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--list", "list_name", default="", help="Add every imported contact to this list.")
@click.option(
    "--on-duplicate",
    type=click.Choice(["update", "skip"]),
    default="skip",
    show_default=True,
    help="What to do with an address that is already a contact.",
)
@click.option(
    "--rejects",
    "rejects_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write rejected rows (line, column, reason, original cells) to this CSV file.",
)
@click.option(
    "--role",
    default="",
    help="Role for every row when the file has no role column (e.g. ambassador); "
    "default: unknown (role other).",
)
@click.option(
    "--gender",
    default="",
    help="Grammatical gender (f, m or unknown) for every row when the file has no gender "
    "column; default: unknown.",
)
@click.option(
    "--language",
    default="",
    help="Language tags (e.g. fr) for every row when the file has no language column; "
    "default: none.",
)
def import_contacts_command(
    file: Path,
    list_name: str,
    on_duplicate: str,
    rejects_path: Path | None,
    role: str,
    gender: str,
    language: str,
) -> None:
    """Import contacts from a CSV or XLSX file; the columns are mapped automatically.

    A file without a column letters need (role, gender, language) gets the value given by
    --role, --gender or --language for every row, or leaves it unknown; either is printed.
    """
    from campaign.extensions import db
    from campaign.services.contacts import importing

    if not file.is_file():
        raise CommandError(_("%(file)s: no such file", file=file))
    try:
        info, rows = importing.open_contact_file(file, filename=str(file))
        rows.close()
        mapping, remembered = importing.suggest_mapping(info.headers)
        mapping = importing.clean_mapping(info.headers, mapping)
        options = {"role_type": role, "grammatical_gender": gender, "languages": language}
        fallbacks = importing.clean_fallbacks(mapping, options)
    except importing.TabularError as error:
        raise CommandError(str(error)) from None  # it names the file
    except importing.ImportSetupError as error:
        raise CommandError(f"{file}: {error}") from None
    _describe_mapping(mapping, remembered)
    _describe_fallbacks(fallbacks, options)
    shown_progress = [0.0]

    def progress(p: importing.Progress) -> None:
        if p.total_lines < _PROGRESS_FROM_LINES:
            return
        now = time.monotonic()
        if now - shown_progress[0] >= 1 or p.done_lines >= p.total_lines:
            shown_progress[0] = now
            percent = 100 * p.done_lines // max(p.total_lines, 1)
            line = _(
                "%(percent)3d%% line %(done)s of %(total)s — %(summary)s",
                percent=percent,
                done=format_number(p.done_lines),
                total=format_number(p.total_lines),
                summary=p.result.summary(),
            )
            click.echo(
                f"\r{line}",
                err=True,
                nl=p.done_lines >= p.total_lines,
            )

    def reject(row: importing.RowResult) -> None:
        click.echo(_("line %(line)s: %(reason)s", line=row.line, reason=row.reason))

    try:
        contact_list = importing.find_or_create_list(list_name) if list_name else None
        result = importing.import_contacts(
            file,
            mapping,
            on_duplicate=on_duplicate,
            contact_list=contact_list,
            rejects_path=rejects_path,
            filename=str(file),
            on_progress=progress,
            on_reject=reject,
            fallbacks=fallbacks,
        )
    except importing.TabularError as error:
        db.session.rollback()
        raise CommandError(str(error)) from None
    except importing.ImportSetupError as error:
        db.session.rollback()
        raise CommandError(f"{file}: {error}") from None
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()
    if rejects_path is not None:
        click.echo(_("rejected rows written to %(path)s", path=rejects_path), err=True)
    click.echo(result.summary())


def _describe_mapping(mapping: dict[str, str], remembered: bool) -> None:
    used = ", ".join(f"{h} -> {f}" for h, f in mapping.items() if f)
    if remembered:
        click.echo(_("columns (remembered mapping): %(columns)s", columns=used), err=True)
    else:
        click.echo(_("columns (automatic mapping): %(columns)s", columns=used), err=True)
    ignored = [h for h, f in mapping.items() if not f]
    if ignored:
        click.echo(_("ignored columns: %(columns)s", columns=", ".join(ignored)), err=True)


_OPTIONS = {"role_type": "--role", "grammatical_gender": "--gender", "languages": "--language"}


def _describe_fallbacks(fallbacks: dict[str, str], options: dict[str, str]) -> None:
    """Say which columns letters need the file lacks, and what every row gets instead."""
    from campaign.services.contacts.contacts import FIELD_LABELS
    from campaign.services.contacts.importing import letter_value_words, unknown_meaning

    for name, value in fallbacks.items():
        field, option = str(FIELD_LABELS[name]).lower(), _OPTIONS[name]
        if value:
            click.echo(
                _(
                    "no column for %(field)s: every row gets %(value)s (%(option)s)",
                    field=field,
                    value=letter_value_words(name, value),
                    option=option,
                ),
                err=True,
            )
        else:
            click.echo(
                _(
                    "no column for %(field)s: left unknown (%(meaning)s); choose with %(option)s",
                    field=field,
                    meaning=unknown_meaning(name),
                    option=option,
                ),
                err=True,
            )
    for name, value in options.items():
        if value and name not in fallbacks:
            click.echo(
                _(
                    "the file has a column for %(field)s: %(option)s is not used",
                    field=str(FIELD_LABELS[name]).lower(),
                    option=_OPTIONS[name],
                ),
                err=True,
            )


@click.command("export-contacts")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--list", "list_name", default="", help="Export only the members of this list.")
def export_contacts_command(file: Path, list_name: str) -> None:
    """Export contacts to FILE (.csv or .xlsx), safe to open in a spreadsheet."""
    from sqlalchemy import select

    from campaign.extensions import db
    from campaign.models import Contact
    from campaign.services.contacts.exporting import export_contacts
    from campaign.services.contacts.lists import find_list, members_query

    fmt = file.suffix.lower().lstrip(".")
    if fmt not in ("csv", "xlsx"):
        raise CommandError(_("%(file)s: the name must end in .csv or .xlsx", file=file))
    query = select(Contact).where(Contact.deleted_at.is_(None)).order_by(Contact.id)
    description = "all contacts"
    if list_name:
        found = find_list(list_name)
        if found is None:
            raise CommandError(_("there is no list called %(name)s", name=repr(list_name)))
        query = members_query(found).order_by(Contact.id)
        description = f"list {found.name}"
    partial = file.with_name(file.name + ".part")
    try:
        with partial.open("wb") as destination:
            count = export_contacts(query, fmt, destination, description=f"{description} (CLI)")
        partial.replace(file)
    except BaseException:
        partial.unlink(missing_ok=True)
        db.session.rollback()
        raise
    db.session.commit()
    click.echo(
        ngettext(
            "exported %(num)d contact to %(file)s",
            "exported %(num)d contacts to %(file)s",
            count,
            file=file,
        ),
        file=sys.stdout,
    )
